//! Minting the outbound JWT from a mapper's output: the JWT output kind.
//!
//! Pure logic, no I/O: [`output`] checks the mapper's JSON against the entry's
//! [`OutputPolicy`]; [`jws`] adds claimex's own claims ([`Stamp`]: `iss`, `iat`, `nbf`, `exp`,
//! `jti`, with time and id passed in) and builds the signing input; the signature comes from a
//! [`crate::signer::SigningKey`].

pub mod jws;
pub mod output;

use std::time::Duration;

use serde::Deserialize;

pub use jws::{Stamp, assemble, signing_input};
pub use output::{CheckedClaims, check_output};

use crate::settings::{SettingError, range};

/// The outbound audience when the mapper sets none: AWS STS.
pub const DEFAULT_AUDIENCE: &str = "sts.amazonaws.com";
/// The claims only claimex may set.
pub const RESERVED_CLAIMS: [&str; 5] = ["iss", "iat", "nbf", "exp", "jti"];
/// The longest token AWS STS accepts, in characters.
pub const MAX_TOKEN_CHARS: usize = 20_000;
/// The fewest characters AWS STS accepts in `sub` (`SubjectFromWebIdentityToken`).
pub const MIN_SUB_CHARS: usize = 6;
/// The most characters AWS STS accepts in `sub`.
pub const MAX_SUB_CHARS: usize = 255;

/// What an issuer entry allows the outbound token to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPolicy {
    /// The issuer id, for messages.
    pub issuer_id: String,
    /// Audiences the outbound token may carry (non-empty).
    pub audiences: Vec<String>,
    /// The entry's token lifetime, if it sets one.
    pub token_lifetime: Option<Duration>,
}

/// Lifetimes of minted tokens: the `[token]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSettings {
    /// Lifetime of minted tokens unless the issuer entry sets one, seconds.
    pub lifetime_secs: u64,
    /// Longest lifetime any issuer entry may ask for, seconds.
    pub max_lifetime_secs: u64,
}

impl Default for TokenSettings {
    fn default() -> TokenSettings {
        TokenSettings {
            lifetime_secs: 900,
            max_lifetime_secs: 3600,
        }
    }
}

impl TokenSettings {
    /// Checks the ranges, naming the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        range("lifetime_secs", self.lifetime_secs, 60, 43_200)?;
        range("max_lifetime_secs", self.max_lifetime_secs, 60, 43_200)?;
        if self.lifetime_secs > self.max_lifetime_secs {
            return Err(SettingError::new(
                "lifetime_secs",
                "must not exceed token.max_lifetime_secs",
            ));
        }
        Ok(())
    }

    /// The effective lifetime for an entry: its own, else the default, capped by the maximum.
    pub fn lifetime(&self, entry: &OutputPolicy) -> Duration {
        entry
            .token_lifetime
            .unwrap_or(Duration::from_secs(self.lifetime_secs))
            .min(Duration::from_secs(self.max_lifetime_secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ExchangeError, Refusal};
    use crate::signer::SigningAlg;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use claimex_tags::TAGS_CLAIM;
    use serde_json::{Value, json};

    fn issuer() -> OutputPolicy {
        OutputPolicy {
            issuer_id: "github".into(),
            audiences: vec!["sts.amazonaws.com".into(), "other".into()],
            token_lifetime: None,
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
        let stamp = Stamp::new(
            "https://claimex",
            1000,
            Duration::from_secs(900),
            "AAAAAAAAAAAAAAAAAAAAAA".into(),
        );
        let payload: Value = serde_json::from_str(&checked.payload_json(&stamp)).unwrap();
        assert_eq!(payload["aud"], "sts.amazonaws.com");
        assert_eq!(payload["sub"], "repo:a/b");
        assert_eq!(payload["iss"], "https://claimex");
        assert_eq!(checked.tags.unwrap().keys, vec!["r"]);
        let checked =
            check(json!({"sub": "subject", "aud": ["other", "sts.amazonaws.com"]})).unwrap();
        assert_eq!(checked.aud.len(), 2);
    }

    #[test]
    fn refuses_bad_output() {
        let cases = [
            (json!([1]), "not a JSON object"),
            (json!({"sub": "subject", "exp": 1}), "\"exp\""),
            (json!({"sub": "subject", "iss": "me"}), "\"iss\""),
            (json!({"sub": "subject", "jti": "x"}), "\"jti\""),
            (json!({"sub": "subject", "\u{69}at": 1}), "\"iat\""),
            (json!({}), "no sub"),
            (json!({"sub": 5}), "must be a string"),
            (json!({"sub": ""}), "0 characters: AWS STS accepts 6 to 255"),
            (json!({"sub": "sub-5"}), "5 characters"),
            (json!({"sub": "x".repeat(256)}), "256 characters"),
            (
                json!({"sub": "subject", "aud": "evil"}),
                "\"evil\" is not allowed",
            ),
            (json!({"sub": "subject", "aud": []}), "non-empty"),
            (json!({"sub": "subject", "aud": [1]}), "list of strings"),
            (
                json!({"sub": "subject", TAGS_CLAIM: {"principal_tags": {"a#": ["v"]}}}),
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
            (r#"{"sub": "subject", "sub": "b"}"#, "\"sub\" twice"),
            (r#"{"sub": "subject", "x": 1, "x": 2}"#, "\"x\" twice"),
            (r#"{"sub": "subject", "\u0069ss": "evil"}"#, "\"iss\""),
            (
                r#"{"sub": "subject", "https://aws.amazon.com/tags": {"principal_tags": {"r": ["aws:x"], "r": ["ok"]}}}"#,
                "\"r\" is given twice",
            ),
            (r#"{"sub": "subject"} trailing"#, "not valid JSON"),
            // Found by fuzz/mapper_output: a number beyond f64 passed and was signed.
            (
                r#"{"sub":"ro:vil1","n":1.84467440737099E551615}"#,
                "number out of range",
            ),
            (
                r#"{"sub":"subject","n":[{"m":-1e999}]}"#,
                "number out of range",
            ),
        ] {
            let err = check_output(text, &issuer()).unwrap_err();
            assert!(
                err.description.contains(needle),
                "{text}: {}",
                err.description
            );
        }
        // Members are signed as written, after claimex's own.
        let checked = check_output(
            r#" {"sub": "subject", "n": 1.50, "aud": "other"} "#,
            &issuer(),
        )
        .unwrap();
        let stamp = Stamp::new("https://claimex", 7, Duration::from_secs(1), "j-1".into());
        let payload = checked.payload_json(&stamp);
        assert!(
            payload.ends_with(
                r#","jti":"REPLACED","sub": "subject", "n": 1.50, "aud": "other"}"#
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
        let checked = check(json!({"sub": "subject"})).unwrap();
        let stamp = Stamp::new(
            "https://claimex",
            1000,
            Duration::from_secs(900),
            "AAAAAAAAAAAAAAAAAAAAAA".into(),
        );
        assert_eq!(stamp.exp, 1900);
        assert_eq!(stamp.jti, "AAAAAAAAAAAAAAAAAAAAAA");
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
        assert_eq!(payload["sub"], "subject");
        assert_eq!(parts[2], "AQID");
    }

    #[test]
    fn a_requested_audience_narrows_aud() {
        let stamp = Stamp::new("https://claimex", 1, Duration::from_secs(1), "j".into());
        // No aud from the mapper: the requested one replaces the default.
        let mut checked = check(json!({"sub": "subject", "n": 1})).unwrap();
        checked.narrow_audience("other").unwrap();
        let payload: Value = serde_json::from_str(&checked.payload_json(&stamp)).unwrap();
        assert_eq!(payload["aud"], "other");
        assert_eq!(payload["n"], 1);
        // The mapper's list: narrowed to the requested one, the rest as written.
        let mut checked =
            check(json!({"aud": ["other", "sts.amazonaws.com"], "sub": "subject"})).unwrap();
        checked.narrow_audience("sts.amazonaws.com").unwrap();
        let text = checked.payload_json(&stamp);
        assert!(
            text.ends_with(r#""sub":"subject","aud":"sts.amazonaws.com"}"#),
            "{text}"
        );
        assert_eq!(checked.aud, vec!["sts.amazonaws.com"]);
        // Not among the mapper's: invalid_target.
        let mut checked = check(json!({"sub": "subject", "aud": "other"})).unwrap();
        let err = checked.narrow_audience("sts.amazonaws.com").unwrap_err();
        assert_eq!(err.code().as_str(), "invalid_target");
    }

    #[test]
    fn refuses_oversized_tokens() {
        let checked = check(json!({"sub": "subject", "big": "x".repeat(MAX_TOKEN_CHARS)})).unwrap();
        let stamp = Stamp::new("https://claimex", 0, Duration::from_secs(1), "j".into());
        let err = signing_input(SigningAlg::Rs256, "k", &checked, &stamp).unwrap_err();
        assert!(err.description.contains("20000"));
    }

    #[test]
    fn lifetime_is_capped() {
        let mut issuer = issuer();
        let settings = TokenSettings::default();
        assert_eq!(settings.lifetime(&issuer).as_secs(), 900);
        issuer.token_lifetime = Some(Duration::from_secs(7200));
        assert_eq!(settings.lifetime(&issuer).as_secs(), 3600);
    }

    #[test]
    fn an_unusual_jti_is_escaped() {
        let checked = check(json!({"sub": "subject"})).unwrap();
        let stamp = Stamp::new("https://claimex", 1, Duration::from_secs(1), "a\"b".into());
        let payload: Value = serde_json::from_str(&checked.payload_json(&stamp)).unwrap();
        assert_eq!(payload["jti"], "a\"b");
    }
}
