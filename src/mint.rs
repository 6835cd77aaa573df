//! Minting the outbound token from a mapper's output: checks, host-owned claims, JWS.
//!
//! Pure logic, no I/O. The mapper's JSON is checked before anything is signed: it must be an
//! object; it must not set the claims claimex owns (`iss`, `iat`, `nbf`, `exp`, `jti`); `sub`
//! is a string of 1–255 characters; `aud` is one audience or a list, each allowed for the
//! issuer (default `sts.amazonaws.com`); the AWS tags claim obeys AWS's rules. Then claimex
//! adds its own claims and builds the JWS signing input; the signature comes from a
//! [`crate::signer::SigningKey`].

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use claimex_tags::{TAGS_CLAIM, TagSummary};
use serde_json::{Map, Value};

use crate::error::{ExchangeError, Refusal};
use crate::registry::Issuer;
use crate::signer::SigningAlg;

/// The outbound audience when the mapper sets none: AWS STS.
pub const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";
/// The claims only claimex may set.
pub const RESERVED_CLAIMS: [&str; 5] = ["iss", "iat", "nbf", "exp", "jti"];
/// The longest token AWS STS accepts, in characters.
pub const MAX_TOKEN_CHARS: usize = 20_000;

fn invalid(description: impl Into<String>) -> ExchangeError {
    ExchangeError::new(Refusal::InvalidOutput, description)
}

/// Mapper output that passed every check.
#[derive(Debug, Clone)]
pub struct CheckedClaims {
    /// The claims, without the host-owned ones.
    pub claims: Map<String, Value>,
    /// The outbound `sub`.
    pub sub: String,
    /// The outbound audiences.
    pub aud: Vec<String>,
    /// The session-tag keys, when the tags claim is present.
    pub tags: Option<TagSummary>,
}

/// Checks a mapper's `allow` output for `issuer`.
pub fn check_output(json: &str, issuer: &Issuer) -> Result<CheckedClaims, ExchangeError> {
    let mut claims: Map<String, Value> = match serde_json::from_str::<Value>(json) {
        Ok(Value::Object(claims)) => claims,
        Ok(_) => return Err(invalid("the mapper's output is not a JSON object")),
        Err(e) => {
            return Err(invalid(format!(
                "the mapper's output is not valid JSON: {e}"
            )));
        }
    };
    if let Some(reserved) = RESERVED_CLAIMS.iter().find(|c| claims.contains_key(**c)) {
        return Err(invalid(format!(
            "the mapper set the claim {reserved:?}, which only claimex may set"
        )));
    }
    let sub = match claims.get("sub") {
        Some(Value::String(sub)) if (1..=255).contains(&sub.chars().count()) => sub.clone(),
        Some(Value::String(_)) => {
            return Err(invalid("the mapper's sub must have 1 to 255 characters"));
        }
        Some(_) => return Err(invalid("the mapper's sub must be a string")),
        None => return Err(invalid("the mapper's output has no sub")),
    };
    let aud: Vec<String> = match claims.get("aud") {
        None => vec![DEFAULT_AUDIENCE.to_owned()],
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(list)) if !list.is_empty() => list
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| invalid("the mapper's aud must be a string or a list of strings"))?,
        Some(_) => {
            return Err(invalid(
                "the mapper's aud must be a string or a non-empty list of strings",
            ));
        }
    };
    if let Some(bad) = aud.iter().find(|a| !issuer.output_audiences.contains(a)) {
        return Err(invalid(format!(
            "the audience {bad:?} is not allowed for issuer {:?} (allowed: {})",
            issuer.id,
            issuer.output_audiences.join(", ")
        )));
    }
    if !claims.contains_key("aud") {
        claims.insert("aud".into(), Value::String(DEFAULT_AUDIENCE.into()));
    }
    let tags = match claims.get(TAGS_CLAIM) {
        None => None,
        Some(tags) => Some(
            claimex_tags::check_claim(tags)
                .map_err(|e| invalid(format!("the mapper's session tags are invalid: {e}")))?,
        ),
    };
    Ok(CheckedClaims {
        claims,
        sub,
        aud,
        tags,
    })
}

/// The host-owned claims of one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// claimex's issuer URL.
    pub iss: String,
    /// Issued at, seconds since the Unix epoch; also `nbf`.
    pub iat: u64,
    /// Expiry.
    pub exp: u64,
    /// A fresh random token id.
    pub jti: String,
}

impl Stamp {
    /// Stamps a token issued by `iss` at `now`, valid for `lifetime`.
    pub fn new(iss: &str, now: u64, lifetime: Duration) -> Stamp {
        let mut id = [0u8; 16];
        // A failing system RNG is not recoverable; aws-lc-rs aborts rather than return it.
        aws_lc_rs::rand::fill(&mut id).expect("the system random number generator failed");
        Stamp {
            iss: iss.to_owned(),
            iat: now,
            exp: now + lifetime.as_secs(),
            jti: URL_SAFE_NO_PAD.encode(id),
        }
    }
}

/// The effective lifetime: the issuer's, else the server's, capped by the maximum.
pub fn lifetime(issuer: &Issuer, default: Duration, max: Duration) -> Duration {
    issuer.token_lifetime.unwrap_or(default).min(max)
}

/// Builds `base64url(header) "." base64url(payload)` for the checked claims and stamp.
pub fn signing_input(
    alg: SigningAlg,
    kid: &str,
    checked: &CheckedClaims,
    stamp: &Stamp,
) -> Result<String, ExchangeError> {
    #[derive(serde::Serialize)]
    struct Header<'a> {
        alg: &'a str,
        kid: &'a str,
        typ: &'a str,
    }
    #[derive(serde::Serialize)]
    struct Payload<'a> {
        iss: &'a str,
        iat: u64,
        nbf: u64,
        exp: u64,
        jti: &'a str,
        #[serde(flatten)]
        claims: &'a Map<String, Value>,
    }
    let header = serde_json::to_vec(&Header {
        alg: alg.as_str(),
        kid,
        typ: "JWT",
    });
    let payload = serde_json::to_vec(&Payload {
        iss: &stamp.iss,
        iat: stamp.iat,
        nbf: stamp.iat,
        exp: stamp.exp,
        jti: &stamp.jti,
        claims: &checked.claims,
    });
    let (Ok(header), Ok(payload)) = (header, payload) else {
        return Err(ExchangeError::new(
            Refusal::Internal,
            "the outbound claims could not be serialized",
        ));
    };
    let mut out = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 4);
    URL_SAFE_NO_PAD.encode_string(&header, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
    let signature_chars = 344; // RS256 with a 2048-bit key; ES256 needs 86.
    if out.len() + 1 + signature_chars > MAX_TOKEN_CHARS {
        return Err(invalid(format!(
            "the outbound token would exceed the {MAX_TOKEN_CHARS} characters AWS STS accepts; \
             the mapper must emit fewer or shorter claims"
        )));
    }
    Ok(out)
}

/// Appends the signature to the signing input.
pub fn assemble(mut signing_input: String, signature: &[u8]) -> Result<String, ExchangeError> {
    signing_input.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut signing_input);
    if signing_input.len() > MAX_TOKEN_CHARS {
        return Err(invalid(format!(
            "the outbound token exceeds the {MAX_TOKEN_CHARS} characters AWS STS accepts"
        )));
    }
    Ok(signing_input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::{ClaimsMapper, MapOutcome, MapRequest};
    use serde_json::json;
    use std::sync::Arc;

    struct Nop;
    #[async_trait::async_trait]
    impl ClaimsMapper for Nop {
        fn sha256(&self) -> &str {
            ""
        }
        async fn map(&self, _: &MapRequest<'_>) -> MapOutcome {
            unreachable!()
        }
    }

    fn issuer() -> Issuer {
        Issuer {
            id: "github".into(),
            url: "https://token.actions.githubusercontent.com".into(),
            audiences: vec!["x".into()],
            algorithms: vec![jsonwebtoken::Algorithm::RS256],
            mapper_config: "null".into(),
            output_audiences: vec!["sts.amazonaws.com".into(), "other".into()],
            token_lifetime: None,
            mapper: Arc::new(Nop),
        }
    }

    fn check(v: Value) -> Result<CheckedClaims, ExchangeError> {
        check_output(&v.to_string(), &issuer())
    }

    #[test]
    fn accepts_and_defaults_aud() {
        let checked =
            check(json!({"sub": "repo:a/b", TAGS_CLAIM: {"principal_tags": {"r": ["a/b"]}}}))
                .unwrap();
        assert_eq!(checked.aud, vec!["sts.amazonaws.com"]);
        assert_eq!(checked.claims["aud"], "sts.amazonaws.com");
        assert_eq!(checked.tags.unwrap().keys, vec!["r"]);
        let checked = check(json!({"sub": "s", "aud": ["other", "sts.amazonaws.com"]})).unwrap();
        assert_eq!(checked.aud.len(), 2);
    }

    #[test]
    fn refuses_bad_output() {
        let cases = [
            (json!([1]), "not a JSON object"),
            (json!({"sub": "s", "exp": 1}), "\"exp\""),
            (json!({"sub": "s", "iss": "me"}), "\"iss\""),
            (json!({"sub": "s", "jti": "x"}), "\"jti\""),
            (json!({}), "no sub"),
            (json!({"sub": 5}), "must be a string"),
            (json!({"sub": ""}), "1 to 255"),
            (json!({"sub": "x".repeat(256)}), "1 to 255"),
            (
                json!({"sub": "s", "aud": "evil"}),
                "\"evil\" is not allowed",
            ),
            (json!({"sub": "s", "aud": []}), "non-empty"),
            (json!({"sub": "s", "aud": [1]}), "list of strings"),
            (
                json!({"sub": "s", TAGS_CLAIM: {"principal_tags": {"a#": ["v"]}}}),
                "a#",
            ),
        ];
        for (value, needle) in cases {
            let err = check(value.clone()).unwrap_err();
            assert_eq!(err.refusal, Refusal::InvalidOutput);
            assert!(
                err.description.contains(needle),
                "{value}: {}",
                err.description
            );
        }
        assert!(
            check_output("{not json", &issuer())
                .unwrap_err()
                .description
                .contains("not valid JSON")
        );
    }

    #[test]
    fn stamps_and_assembles() {
        let checked = check(json!({"sub": "s"})).unwrap();
        let stamp = Stamp::new("https://claimex", 1000, Duration::from_secs(900));
        assert_eq!(stamp.exp, 1900);
        assert_eq!(stamp.jti.len(), 22);
        assert_ne!(stamp.jti, Stamp::new("x", 0, Duration::ZERO).jti);
        let input = signing_input(SigningAlg::Es256, "kid1", &checked, &stamp).unwrap();
        let token = assemble(input, &[1, 2, 3]).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, json!({"alg": "ES256", "kid": "kid1", "typ": "JWT"}));
        let payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(payload["iss"], "https://claimex");
        assert_eq!(payload["nbf"], 1000);
        assert_eq!(payload["exp"], 1900);
        assert_eq!(payload["sub"], "s");
        assert_eq!(parts[2], "AQID");
    }

    #[test]
    fn refuses_oversized_tokens() {
        let checked = check(json!({"sub": "s", "big": "x".repeat(MAX_TOKEN_CHARS)})).unwrap();
        let stamp = Stamp::new("https://claimex", 0, Duration::from_secs(1));
        let err = signing_input(SigningAlg::Rs256, "k", &checked, &stamp).unwrap_err();
        assert!(err.description.contains("20000"));
    }

    #[test]
    fn lifetime_is_capped() {
        let mut issuer = issuer();
        let max = Duration::from_secs(3600);
        assert_eq!(
            lifetime(&issuer, Duration::from_secs(900), max).as_secs(),
            900
        );
        issuer.token_lifetime = Some(Duration::from_secs(7200));
        assert_eq!(lifetime(&issuer, Duration::from_secs(900), max), max);
    }
}
