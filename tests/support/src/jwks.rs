//! A relying party of claimex, as AWS STS is one: read the discovery document at the issuer
//! URL, fetch the JWKS it names, and verify a token's signature, `iss` and `aud` with a
//! library (jsonwebtoken), never with claimex's own code.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::client::http;

/// The audience claimex's tokens carry by default.
pub const STS: &str = "sts.amazonaws.com";

/// `GET <issuer>/.well-known/openid-configuration`, checking that it names `issuer`.
pub async fn discover(issuer: &str) -> Value {
    let url = format!("{issuer}/.well-known/openid-configuration");
    let doc: Value = get_json(&url).await;
    assert_eq!(
        doc["issuer"], issuer,
        "the discovery document names another issuer: {doc}"
    );
    doc
}

/// The JWKS of `issuer`, found as a relying party finds it: discovery, then `jwks_uri`.
pub async fn fetch(issuer: &str) -> Value {
    let doc = discover(issuer).await;
    let uri = doc["jwks_uri"]
        .as_str()
        .unwrap_or_else(|| panic!("the discovery document has no jwks_uri: {doc}"));
    get_json(uri).await
}

async fn get_json(url: &str) -> Value {
    let response = http()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(response.status(), 200, "GET {url}");
    response
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// The `kid`s of a JWKS, sorted.
pub fn kids(jwks: &Value) -> Vec<String> {
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .map(|keys| {
            keys.iter()
                .filter_map(|k| k["kid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    kids.sort();
    kids
}

/// The header of a compact JWS, as JSON.
pub fn header(token: &str) -> Value {
    let part = token.split('.').next().unwrap_or_default();
    URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_else(|| panic!("not a JWS header: {part}"))
}

/// Verifies `token` against `jwks` (the key its `kid` names, the algorithm its header names)
/// and checks `iss`, `aud`, and that `exp`, `iat`, `sub` are present; returns the claims.
pub fn verify(token: &str, jwks: &Value, issuer: &str, audience: &str) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("the token has no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .ok_or("the JWKS has no keys")?
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .ok_or_else(|| format!("kid {kid} is not in the JWKS"))?;
    let jwk: jsonwebtoken::jwk::Jwk =
        serde_json::from_value(jwk.clone()).map_err(|e| e.to_string())?;
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}

/// Verifies a token of the claimex at `base` as AWS STS would (discovery, JWKS, signature,
/// `iss` = `base`, `aud` = [`STS`]) and returns its claims; panics when it does not verify.
pub async fn verify_at(base: &str, token: &str) -> Value {
    let jwks = fetch(base).await;
    verify(token, &jwks, base, STS)
        .unwrap_or_else(|e| panic!("the token does not verify against {base}'s JWKS: {e}"))
}
