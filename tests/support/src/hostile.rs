//! Tokens claimex must refuse, each an attack on JWT verification (RFC 8725). They live here,
//! in the dev-only test kit, and nowhere in the product.
//!
//! Each takes the claims to carry, usually valid ones from [`TestIssuer::github_claims`], so
//! that the only thing wrong with the token is the attack itself.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use claimex::signer::SigningAlg;
use claimex::signer::local::LocalKey;
use serde_json::{Value, json};

use crate::issuer::{TestIssuer, sign};

/// An unsecured token: `alg: none`, no signature.
pub fn alg_none(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

/// The algorithm-confusion attack: an HS256 token whose HMAC key is the issuer's public key
/// (its JWK as published), naming the issuer's real `kid`. A verifier that lets the token
/// choose the algorithm checks the HMAC with the public key and accepts it.
pub fn hs256_keyed_with_public_key(issuer: &TestIssuer, claims: &Value) -> String {
    let secret = serde_json::to_vec(&issuer.public_jwk()).unwrap_or_default();
    let header = URL_SAFE_NO_PAD
        .encode(json!({"alg": "HS256", "typ": "JWT", "kid": issuer.kid()}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{header}.{payload}");
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &secret),
        input.as_bytes(),
    );
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// An RS256 token signed by a key of the attacker's, whose header names `kid` (a key the
/// victim's issuer publishes): only the signature check can catch it.
pub fn foreign_key_with_kid(kid: &str, claims: &Value) -> String {
    let (key, _) = LocalKey::generate(SigningAlg::Rs256).expect("RSA key generation failed");
    sign(&key, json!({"alg": "RS256", "kid": kid}), claims)
}

/// A token signed by the issuer whose header carries a critical extension claimex does not
/// understand (`crit: ["exp"]`, RFC 7515 §4.1.11): it must be refused, not ignored.
pub fn crit_header(issuer: &TestIssuer, claims: &Value) -> String {
    issuer.mint_with_header(
        json!({"alg": "RS256", "kid": issuer.kid(), "crit": ["exp"], "exp": 1}),
        claims,
    )
}

/// A token signed by the issuer (RS256) whose header names another algorithm, `alg`: one the
/// issuer's allow-list does not hold is refused before any key is tried.
pub fn mislabelled_alg(issuer: &TestIssuer, alg: &str, claims: &Value) -> String {
    issuer.mint_with_header(json!({"alg": alg, "kid": issuer.kid()}), claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::header;

    #[test]
    fn alg_none_has_no_signature() {
        let token = alg_none(&json!({"sub": "x"}));
        assert!(token.ends_with('.'));
        assert_eq!(header(&token)["alg"], "none");
    }

    #[test]
    fn a_foreign_key_names_the_victims_kid() {
        let token = foreign_key_with_kid("victim", &json!({"sub": "x"}));
        assert_eq!(header(&token)["kid"], "victim");
        assert_eq!(header(&token)["alg"], "RS256");
        assert_eq!(token.split('.').count(), 3);
    }
}
