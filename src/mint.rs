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
use std::borrow::Cow;

use serde_json::Value;
use serde_json::value::RawValue;

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
    /// The mapper's object members exactly as it wrote them (the text between its braces),
    /// checked: valid JSON, no member name twice, none of the host-owned claims.
    members: String,
    /// Whether the mapper set no `aud`, so claimex adds the default.
    default_aud: bool,
    /// The outbound `sub`.
    pub sub: String,
    /// The outbound audiences.
    pub aud: Vec<String>,
    /// The session-tag keys, when the tags claim is present.
    pub tags: Option<TagSummary>,
}

impl CheckedClaims {
    /// The outbound payload as JSON text: claimex's claims (`iss`, `iat`, `nbf`, `exp`,
    /// `jti`), then the mapper's members as written, then the default `aud` when it set none.
    pub fn payload_json(&self, stamp: &Stamp) -> String {
        use std::fmt::Write as _;
        let mut out = String::with_capacity(self.members.len() + stamp.iss.len() + 128);
        out.push_str(r#"{"iss":"#);
        // A string and numbers: serialising them cannot fail.
        out.push_str(&Value::from(stamp.iss.as_str()).to_string());
        let _ = write!(
            out,
            r#","iat":{iat},"nbf":{iat},"exp":{exp},"jti":"{jti}","#,
            iat = stamp.iat,
            exp = stamp.exp,
            // base64url: nothing to escape.
            jti = stamp.jti
        );
        out.push_str(&self.members);
        if self.default_aud {
            let _ = write!(out, r#","aud":"{DEFAULT_AUDIENCE}""#);
        }
        out.push('}');
        out
    }
}

/// The members of the mapper's object that claimex reads, borrowed from its output; the
/// rest are only checked for duplicate and reserved names.
#[derive(Default)]
struct OutputMembers<'a> {
    sub: Option<&'a RawValue>,
    aud: Option<&'a RawValue>,
    tags: Option<&'a RawValue>,
    reserved: Option<&'static str>,
    duplicate: Option<String>,
}

impl<'de> serde::Deserialize<'de> for OutputMembers<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = OutputMembers<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of claims")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OutputMembers<'de>, A::Error> {
                let mut out = OutputMembers::default();
                let mut seen = std::collections::HashSet::new();
                while let Some(MemberName(name)) = map.next_key()? {
                    let value: &'de RawValue = map.next_value()?;
                    match name.as_ref() {
                        "sub" => out.sub = Some(value),
                        "aud" => out.aud = Some(value),
                        TAGS_CLAIM => out.tags = Some(value),
                        other => {
                            if out.reserved.is_none() {
                                out.reserved =
                                    RESERVED_CLAIMS.iter().copied().find(|r| *r == other);
                            }
                        }
                    }
                    if !seen.insert(name.clone()) && out.duplicate.is_none() {
                        out.duplicate = Some(name.into_owned());
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(Members)
    }
}

/// A member name, unescaped (so `"\u0069ss"` is `iss`), borrowed when it has no escapes.
struct MemberName<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for MemberName<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> serde::de::Visitor<'de> for Name {
            type Value = MemberName<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<MemberName<'de>, E> {
                Ok(MemberName(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<MemberName<'de>, E> {
                Ok(MemberName(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(Name)
    }
}

/// Parses a member claimex checks in depth (the tags claim), refusing a name given twice in
/// any of its objects: the text is signed as written, so what was checked must be the only
/// reading of it.
fn strict_value(raw: &RawValue) -> Result<Value, ExchangeError> {
    struct Strict(Value);
    impl<'de> serde::Deserialize<'de> for Strict {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
            struct V;
            impl<'de> serde::de::Visitor<'de> for V {
                type Value = Strict;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a JSON value")
                }
                fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
                    Ok(Strict(v.into()))
                }
                fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
                    Ok(Strict(v.into()))
                }
                fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
                    Ok(Strict(v.into()))
                }
                fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
                    Ok(Strict(v.into()))
                }
                fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
                    Ok(Strict(v.into()))
                }
                fn visit_unit<E>(self) -> Result<Strict, E> {
                    Ok(Strict(Value::Null))
                }
                fn visit_seq<A: serde::de::SeqAccess<'de>>(
                    self,
                    mut seq: A,
                ) -> Result<Strict, A::Error> {
                    let mut list = Vec::new();
                    while let Some(Strict(item)) = seq.next_element()? {
                        list.push(item);
                    }
                    Ok(Strict(Value::Array(list)))
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Strict, A::Error> {
                    let mut object = serde_json::Map::new();
                    while let Some(MemberName(name)) = map.next_key()? {
                        let Strict(value) = map.next_value()?;
                        let name = name.into_owned();
                        if object.contains_key(&name) {
                            return Err(serde::de::Error::custom(format_args!(
                                "the member {:?} is given twice",
                                name.chars().take(64).collect::<String>()
                            )));
                        }
                        object.insert(name, value);
                    }
                    Ok(Strict(Value::Object(object)))
                }
            }
            d.deserialize_any(V)
        }
    }
    serde_json::from_str::<Strict>(raw.get())
        .map(|Strict(value)| value)
        .map_err(|e| invalid(format!("the mapper's session tags are invalid: {e}")))
}

/// Checks a mapper's `allow` output for `issuer`. The output is parsed once, without
/// building it: only `sub`, `aud` and the tags claim are read into values.
pub fn check_output(json: &str, issuer: &Issuer) -> Result<CheckedClaims, ExchangeError> {
    let trimmed = json.trim();
    if !trimmed.starts_with('{') {
        return Err(
            match serde_json::from_str::<serde::de::IgnoredAny>(trimmed) {
                Ok(_) => invalid("the mapper's output is not a JSON object"),
                Err(e) => invalid(format!("the mapper's output is not valid JSON: {e}")),
            },
        );
    }
    let members: OutputMembers<'_> = serde_json::from_str(trimmed)
        .map_err(|e| invalid(format!("the mapper's output is not valid JSON: {e}")))?;
    if let Some(reserved) = members.reserved {
        return Err(invalid(format!(
            "the mapper set the claim {reserved:?}, which only claimex may set"
        )));
    }
    if let Some(name) = members.duplicate {
        return Err(invalid(format!(
            "the mapper's output has the claim {:?} twice",
            name.chars().take(64).collect::<String>()
        )));
    }
    let value = |raw: &RawValue| serde_json::from_str::<Value>(raw.get()).unwrap_or(Value::Null);
    let sub = match members.sub.map(value) {
        Some(Value::String(sub)) if (1..=255).contains(&sub.chars().count()) => sub,
        Some(Value::String(_)) => {
            return Err(invalid("the mapper's sub must have 1 to 255 characters"));
        }
        Some(_) => return Err(invalid("the mapper's sub must be a string")),
        None => return Err(invalid("the mapper's output has no sub")),
    };
    let aud: Vec<String> = match members.aud.map(value) {
        None => vec![DEFAULT_AUDIENCE.to_owned()],
        Some(Value::String(a)) => vec![a],
        Some(Value::Array(list)) if !list.is_empty() => list
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Some(s),
                _ => None,
            })
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
    let tags = match members.tags.map(strict_value).transpose()? {
        None => None,
        Some(tags) => Some(
            claimex_tags::check_claim(&tags)
                .map_err(|e| invalid(format!("the mapper's session tags are invalid: {e}")))?,
        ),
    };
    // Valid JSON starting with '{' ends with '}': the members are what lies between.
    let inner = trimmed[1..trimmed.len() - 1].trim();
    Ok(CheckedClaims {
        members: inner.to_owned(),
        default_aud: members.aud.is_none(),
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
    let header = serde_json::to_vec(&Header {
        alg: alg.as_str(),
        kid,
        typ: "JWT",
    })
    .map_err(|_| {
        ExchangeError::new(
            Refusal::Internal,
            "the outbound header could not be serialized",
        )
    })?;
    let payload = checked.payload_json(stamp);
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
        let stamp = Stamp::new("https://claimex", 1000, Duration::from_secs(900));
        let payload: Value = serde_json::from_str(&checked.payload_json(&stamp)).unwrap();
        assert_eq!(payload["aud"], "sts.amazonaws.com");
        assert_eq!(payload["sub"], "repo:a/b");
        assert_eq!(payload["iss"], "https://claimex");
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
            (json!({"sub": "s", "\u{69}at": 1}), "\"iat\""),
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
        // A member given twice, or a reserved claim spelled with an escape, is refused:
        // parsers disagree on which duplicate counts.
        for (text, needle) in [
            (r#"{"sub": "a", "sub": "b"}"#, "\"sub\" twice"),
            (r#"{"sub": "a", "x": 1, "x": 2}"#, "\"x\" twice"),
            (r#"{"sub": "a", "\u0069ss": "evil"}"#, "\"iss\""),
            (
                r#"{"sub": "a", "https://aws.amazon.com/tags": {"principal_tags": {"r": ["aws:x"], "r": ["ok"]}}}"#,
                "\"r\" is given twice",
            ),
            (r#"{"sub": "a"} trailing"#, "not valid JSON"),
        ] {
            let err = check_output(text, &issuer()).unwrap_err();
            assert!(
                err.description.contains(needle),
                "{text}: {}",
                err.description
            );
        }
        // Members are signed as written, after claimex's own.
        let checked =
            check_output(r#" {"sub": "a", "n": 1.50, "aud": "other"} "#, &issuer()).unwrap();
        let stamp = Stamp::new("https://claimex", 7, Duration::from_secs(1));
        let payload = checked.payload_json(&stamp);
        assert!(
            payload.ends_with(
                r#","jti":"REPLACED","sub": "a", "n": 1.50, "aud": "other"}"#
                    .replace("REPLACED", &stamp.jti)
                    .as_str()
            ),
            "{payload}"
        );
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
