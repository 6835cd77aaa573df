//! Verifying an inbound token against one registered issuer, by the rules of RFC 8725.
//!
//! Pure logic, no I/O: the caller supplies the issuer's [`KeySet`] (fetched and cached by an
//! adapter) and the clock. The checks, in order: size and shape of the compact JWS; the
//! header's `alg` is on the issuer's allow-list (asymmetric only, so never `none` and never
//! HMAC with a public key); the key is chosen by `kid` and must be of that algorithm's
//! family and not restricted to another algorithm; the signature; then `exp` and `iat`
//! required, `nbf` honoured, all within a bounded leeway; `iss` equal to the registered URL;
//! `aud` intersecting the accepted audiences; and the token not older than the maximum age.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Header, Validation};
use serde_json::Value;

use crate::error::{ExchangeError, Refusal};
use crate::registry::Issuer;

/// Limits applied to every inbound token.
#[derive(Debug, Clone)]
pub struct VerifyPolicy {
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Largest token accepted, in bytes.
    pub max_token_bytes: usize,
    /// Oldest token accepted, measured from `iat`.
    pub max_token_age: Duration,
}

impl Default for VerifyPolicy {
    fn default() -> VerifyPolicy {
        VerifyPolicy {
            leeway: Duration::from_secs(60),
            max_token_bytes: 16 * 1024,
            max_token_age: Duration::from_secs(3600),
        }
    }
}

fn unverified(description: impl Into<String>) -> ExchangeError {
    ExchangeError::new(Refusal::Unverified, description)
}

fn malformed(description: impl Into<String>) -> ExchangeError {
    ExchangeError::new(Refusal::Malformed, description)
}

/// The parts of a token that can be read before its signature is checked. Nothing here is
/// trusted: it only selects the key.
#[derive(Debug, Clone)]
pub struct Unverified {
    /// The decoded JOSE header.
    pub header: Header,
}

/// Checks size and shape and reads the header without trusting it.
pub fn inspect(token: &str, policy: &VerifyPolicy) -> Result<Unverified, ExchangeError> {
    if token.len() > policy.max_token_bytes {
        return Err(ExchangeError::new(
            Refusal::TooLarge,
            format!(
                "the token is {} bytes; at most {} are accepted",
                token.len(),
                policy.max_token_bytes
            ),
        ));
    }
    if token.is_empty() {
        return Err(malformed("no token: send the id-token as the request body"));
    }
    let dots = token.bytes().filter(|b| *b == b'.').count();
    let charset_ok = token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if dots != 2 || !charset_ok {
        return Err(malformed(
            "the body is not a JWT in compact serialization (three base64url parts joined by dots)",
        ));
    }
    let header = jsonwebtoken::decode_header(token).map_err(|_| describe_bad_header(token))?;
    Ok(Unverified { header })
}

/// The `iss` of a token, unverified: only to choose which registered issuer verifies it.
pub fn unverified_iss(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<IssOnly>(&bytes).ok()?.iss
}

/// Says why a header did not decode: an unsupported `alg` (such as `none`) is a token that
/// fails verification; anything else is not a JWT at all.
fn describe_bad_header(token: &str) -> ExchangeError {
    let alg = token
        .split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|header| header.get("alg").and_then(Value::as_str).map(str::to_owned));
    match alg {
        Some(alg) => unverified(format!(
            "the token's algorithm {:?} is never accepted",
            alg.chars().take(16).collect::<String>()
        )),
        None => malformed("the token header is not a JSON object with an alg"),
    }
}

#[derive(serde::Deserialize)]
struct IssOnly {
    #[serde(default)]
    iss: Option<String>,
}

/// One issuer's verification keys, indexed by `kid`.
#[derive(Default)]
pub struct KeySet {
    by_kid: HashMap<String, IssuerKey>,
    anonymous: Vec<IssuerKey>,
}

struct IssuerKey {
    key: DecodingKey,
    /// The `alg` the JWK is restricted to, when it says so.
    alg: Option<Algorithm>,
}

/// How a key lookup ended.
pub enum KeyMatch<'a> {
    /// The key to verify with.
    Found(&'a DecodingKey),
    /// The token names a `kid` this set does not have (refetching may help).
    UnknownKid,
    /// The token names no `kid` and no single key fits.
    NoKey,
}

impl KeySet {
    /// Parses a JWKS document. Keys that are not for signatures, are symmetric, or cannot be
    /// parsed are skipped; a document with no usable key is an error.
    pub fn from_jwks(bytes: &[u8]) -> Result<KeySet, String> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<Value>,
        }
        let document: Document =
            serde_json::from_slice(bytes).map_err(|e| format!("the JWKS is not valid: {e}"))?;
        let mut set = KeySet::default();
        for raw in document.keys {
            let alg = raw
                .get("alg")
                .and_then(Value::as_str)
                .map(|a| a.parse::<Algorithm>());
            let alg = match alg {
                None => None,
                Some(Ok(alg)) => Some(alg),
                Some(Err(_)) => continue,
            };
            let Ok(jwk) = serde_json::from_value::<Jwk>(raw) else {
                continue;
            };
            if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature)
                || matches!(
                    jwk.algorithm,
                    AlgorithmParameters::OctetKey(_) | AlgorithmParameters::Other(_)
                )
            {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(&jwk) else {
                continue;
            };
            let entry = IssuerKey { key, alg };
            match jwk.common.key_id {
                Some(kid) => {
                    set.by_kid.insert(kid, entry);
                }
                None => set.anonymous.push(entry),
            }
        }
        if set.is_empty() {
            return Err("the JWKS has no usable signing key".into());
        }
        Ok(set)
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.by_kid.len() + self.anonymous.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the set has a key with this id.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// Finds the key for a token signed with `alg` naming `kid`.
    pub fn find(&self, kid: Option<&str>, alg: Algorithm) -> KeyMatch<'_> {
        let fits =
            |k: &&IssuerKey| k.key.family() == alg.family() && k.alg.is_none_or(|a| a == alg);
        match kid {
            Some(kid) => match self.by_kid.get(kid) {
                Some(k) if fits(&k) => KeyMatch::Found(&k.key),
                Some(_) => KeyMatch::NoKey,
                None => KeyMatch::UnknownKid,
            },
            None => {
                let mut candidates = self.by_kid.values().chain(&self.anonymous).filter(fits);
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => KeyMatch::Found(&only.key),
                    _ => KeyMatch::NoKey,
                }
            }
        }
    }
}

/// The registered claims claimex itself reads; every other claim stays in the raw payload
/// for the mapper, so the payload is never turned into a map on the hot path.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Registered {
    /// `iss`, when it is a string.
    #[serde(default, deserialize_with = "string_or_none")]
    pub iss: Option<String>,
    /// `sub`, when it is a string.
    #[serde(default, deserialize_with = "string_or_none")]
    pub sub: Option<String>,
    /// `jti`, when it is a string.
    #[serde(default, deserialize_with = "string_or_none")]
    pub jti: Option<String>,
    /// `iat`, as it came.
    #[serde(default)]
    pub iat: Option<Value>,
}

fn string_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

use serde::Deserialize as _;

/// A token that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The registered claims claimex reads.
    pub registered: Registered,
    /// The verified payload exactly as signed (a JSON object), for the mapper.
    pub claims_json: String,
}

/// Checks the token's signature with `key` and its claims against `issuer` at time `now`
/// (seconds since the Unix epoch).
pub fn verify(
    token: &str,
    header: &Header,
    issuer: &Issuer,
    key: &DecodingKey,
    policy: &VerifyPolicy,
    now: u64,
) -> Result<Verified, ExchangeError> {
    if !issuer.algorithms.contains(&header.alg) {
        return Err(unverified(format!(
            "the token is signed with {:?}, which issuer {:?} does not accept",
            header.alg, issuer.id
        )));
    }
    if header.alg.family() == AlgorithmFamily::Hmac {
        return Err(unverified("symmetric algorithms are never accepted"));
    }
    let mut validation = Validation::new(header.alg);
    validation.leeway = policy.leeway.as_secs();
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "iss", "aud"]);
    validation.set_issuer(&[&issuer.url]);
    validation.set_audience(&issuer.audiences);
    let data = jsonwebtoken::decode::<Registered>(token, key, &validation)
        .map_err(|e| describe_decode_error(e.kind(), issuer))?;
    let registered = data.claims;
    let iat = match &registered.iat {
        None => return Err(unverified("the token has no iat claim")),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| unverified("the token's iat is not a whole number of seconds"))?,
    };
    let leeway = policy.leeway.as_secs();
    if iat > now.saturating_add(leeway) {
        return Err(unverified("the token's iat lies in the future"));
    }
    if now.saturating_sub(iat) > policy.max_token_age.as_secs().saturating_add(leeway) {
        return Err(unverified(format!(
            "the token was issued {} s ago; tokens older than {} s are refused",
            now - iat,
            policy.max_token_age.as_secs()
        )));
    }
    let payload = token.split('.').nth(1).unwrap_or_default();
    let claims_json = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| unverified("the token payload is not UTF-8"))?;
    Ok(Verified {
        registered,
        claims_json,
    })
}

fn describe_decode_error(kind: &ErrorKind, issuer: &Issuer) -> ExchangeError {
    let text = match kind {
        ErrorKind::InvalidSignature => "the token's signature does not verify".to_owned(),
        ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
        ErrorKind::ImmatureSignature => {
            "the token is not valid yet (nbf lies in the future)".to_owned()
        }
        ErrorKind::InvalidIssuer => format!(
            "the token's iss is not {:?}, the URL registered for issuer {:?}",
            issuer.url, issuer.id
        ),
        ErrorKind::InvalidAudience => format!(
            "the token's aud does not include an audience accepted for issuer {:?}",
            issuer.id
        ),
        ErrorKind::MissingRequiredClaim(claim) => format!("the token has no {claim} claim"),
        ErrorKind::InvalidClaimFormat(claim) => format!("the token's {claim} claim is malformed"),
        ErrorKind::InvalidAlgorithm => {
            "the token's algorithm does not match the issuer's key".to_owned()
        }
        ErrorKind::Json(_)
        | ErrorKind::Utf8(_)
        | ErrorKind::Base64(_)
        | ErrorKind::InvalidToken => "the token's payload is not a valid JSON object".to_owned(),
        _ => "the token cannot be verified".to_owned(),
    };
    unverified(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspect_refuses_bad_shapes() {
        let policy = VerifyPolicy::default();
        let big = "a".repeat(policy.max_token_bytes + 1);
        assert_eq!(
            inspect(&big, &policy).unwrap_err().refusal,
            Refusal::TooLarge
        );
        for bad in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "a b.c.d",
            "é.b.c",
            "e30.e30.e30",
        ] {
            assert_eq!(
                inspect(bad, &policy).unwrap_err().refusal,
                Refusal::Malformed,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn inspect_reads_header_and_iss() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k1"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"https://issuer"}"#);
        let token = format!("{header}.{payload}.sig");
        let seen = inspect(&token, &VerifyPolicy::default()).unwrap();
        assert_eq!(seen.header.kid.as_deref(), Some("k1"));
        assert_eq!(unverified_iss(&token).as_deref(), Some("https://issuer"));
    }

    #[test]
    fn inspect_refuses_alg_none() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"x"}"#);
        let err = inspect(&format!("{header}.{payload}."), &VerifyPolicy::default()).unwrap_err();
        assert_eq!(err.refusal, Refusal::Unverified);
        assert!(
            err.description.contains("\"none\" is never accepted"),
            "{}",
            err.description
        );
    }

    #[test]
    fn jwks_skips_symmetric_and_unusable_keys() {
        let jwks = br#"{"keys": [
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "weird", "kid": "w"},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "alg": "ES256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
        ]}"#;
        let set = KeySet::from_jwks(jwks).unwrap();
        assert_eq!(set.len(), 1);
        assert!(!set.has_kid("hmac"));
        assert!(matches!(
            set.find(Some("ec"), Algorithm::ES256),
            KeyMatch::Found(_)
        ));
        assert!(matches!(
            set.find(Some("ec"), Algorithm::RS256),
            KeyMatch::NoKey
        ));
        assert!(matches!(
            set.find(Some("ec"), Algorithm::ES384),
            KeyMatch::NoKey
        ));
        assert!(matches!(
            set.find(Some("zz"), Algorithm::ES256),
            KeyMatch::UnknownKid
        ));
        assert!(matches!(
            set.find(None, Algorithm::ES256),
            KeyMatch::Found(_)
        ));
        assert!(KeySet::from_jwks(br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#).is_err());
        assert!(KeySet::from_jwks(b"[]").is_err());
    }
}
