//! Subject kind `oidc`: an OIDC id-token (a compact JWS) from a registered issuer, verified
//! by the rules of RFC 8725.
//!
//! - [`compact`] reads the token without trusting it (shape, header, payload);
//! - [`keys`] holds an issuer's JWKS as parsed public keys and picks one by `kid` and `alg`;
//! - [`claims`] reads the registered claims once, and checks them after the signature holds;
//! - [`policy`] is what an issuer entry says and the server-wide limits;
//! - [`issuer_keys`] is the adapter behind [`IssuerKeys`]: OIDC discovery and the JWKS over
//!   HTTP, cached.
//!
//! [`JwtVerifier`] strings them together: inspect, choose the issuer (by the caller's issuer
//! id or the token's `iss`), check the algorithm against the issuer's allow-list before any
//! key is fetched, find the key (refetching once for an unknown `kid`), check the signature,
//! then the claims.

pub mod claims;
pub mod compact;
pub mod issuer_keys;
pub mod keys;
pub mod policy;

use std::sync::Arc;

use async_trait::async_trait;
use jsonwebtoken::AlgorithmFamily;

pub use compact::{Unverified, inspect};
pub use keys::{KeyMatch, KeySet, VerifyingKey};
pub use policy::{OidcPolicy, OidcSpec, VerifyPolicy, check_issuer_url};

use super::{Choose, Claimed, SubjectKind, SubjectVerifier, Verified};
use crate::error::{ExchangeError, ReasonCode, Refusal};

fn unverified(code: ReasonCode, description: impl Into<String>) -> ExchangeError {
    ExchangeError::coded(code, description)
}

/// Why an issuer's keys could not be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum KeysError {
    /// The issuer cannot be reached, and either no keys are cached or the token names a key
    /// the cached ones lack: the token may be fine, it cannot be checked now.
    #[error("{reason}")]
    Unavailable {
        /// What the caller is told.
        reason: String,
        /// How long until the next fetch may be tried (fetches are paced), so until a retry
        /// can succeed.
        retry_after: std::time::Duration,
    },
}

/// Where the verifier gets an issuer's keys.
#[async_trait]
pub trait IssuerKeys: Send + Sync {
    /// The issuer's current keys. `unknown_kid` is set when a token named a key the last
    /// answer did not have: implementations may then refetch, at a bounded rate.
    async fn keys(
        &self,
        issuer: &OidcPolicy,
        unknown_kid: Option<&str>,
    ) -> Result<Arc<KeySet>, KeysError>;
}

/// Checks the token's signature with `key` and its claims against `issuer` at time `now`
/// (seconds since the Unix epoch). The claims, read once by [`inspect`], are checked only
/// after the signature holds.
pub fn verify(
    seen: Unverified<'_>,
    issuer: &OidcPolicy,
    key: &VerifyingKey,
    limits: &VerifyPolicy,
    now: u64,
) -> Result<Verified, ExchangeError> {
    let alg = seen.header.alg;
    if !issuer.algorithms.contains(&alg) {
        return Err(unverified(
            ReasonCode::AlgorithmNotAllowed,
            format!(
                "the token is signed with {alg:?}, which issuer {:?} does not accept",
                issuer.id
            ),
        ));
    }
    if alg.family() == AlgorithmFamily::Hmac {
        return Err(unverified(
            ReasonCode::AlgorithmNotAllowed,
            "symmetric algorithms are never accepted",
        ));
    }
    let signature = base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(seen.signature)
        .map_err(|_| {
            unverified(
                ReasonCode::BadSignature,
                "the token's signature is not base64url",
            )
        })?;
    if !key.verify(alg, seen.signing_input.as_bytes(), &signature) {
        return Err(unverified(
            ReasonCode::BadSignature,
            "the token's signature does not verify",
        ));
    }
    let registered = claims::check(seen.claims, issuer, limits, now)?;
    Ok(Verified {
        iss: registered.iss,
        sub: registered.sub,
        jti: registered.jti,
        claims_json: seen.payload,
    })
}

/// The `oidc` subject kind: verifies id-tokens with keys from an [`IssuerKeys`].
pub struct JwtVerifier {
    keys: Arc<dyn IssuerKeys>,
    limits: VerifyPolicy,
}

impl JwtVerifier {
    /// A verifier fetching keys through `keys`, under `limits`.
    pub fn new(keys: Arc<dyn IssuerKeys>, limits: VerifyPolicy) -> JwtVerifier {
        JwtVerifier { keys, limits }
    }

    async fn keys(
        &self,
        issuer: &OidcPolicy,
        unknown_kid: Option<&str>,
    ) -> Result<Arc<KeySet>, ExchangeError> {
        self.keys.keys(issuer, unknown_kid).await.map_err(
            |KeysError::Unavailable {
                 reason,
                 retry_after,
             }| {
                ExchangeError::coded(ReasonCode::IssuerKeysUnavailable, reason)
                    .retry_after(retry_after)
            },
        )
    }
}

#[async_trait]
impl SubjectVerifier for JwtVerifier {
    fn kind(&self) -> SubjectKind {
        SubjectKind::Oidc
    }

    async fn verify(
        &self,
        credential: &str,
        choose: &mut Choose<'_>,
        now: u64,
    ) -> Result<Verified, ExchangeError> {
        let seen = inspect(credential, &self.limits)?;
        let policy = choose(match seen.iss() {
            Some(url) => Claimed::Issuer(url),
            None => Claimed::Unnamed("the token has no iss claim"),
        })?;
        let issuer = policy.oidc().ok_or_else(|| {
            ExchangeError::new(Refusal::Internal, "the issuer entry is not of kind oidc")
        })?;
        // The allow-list first, so a token with a refused algorithm costs no key fetch.
        if !issuer.algorithms.contains(&seen.header.alg) {
            return Err(unverified(
                ReasonCode::AlgorithmNotAllowed,
                format!(
                    "the token is signed with {:?}, which issuer {:?} does not accept",
                    seen.header.alg, issuer.id
                ),
            ));
        }
        let kid = seen.header.kid.as_deref();
        let mut keys = self.keys(issuer, None).await?;
        if matches!(keys.find(kid, seen.header.alg), KeyMatch::UnknownKid) {
            keys = self.keys(issuer, kid).await?;
        }
        let key = match keys.find(kid, seen.header.alg) {
            KeyMatch::Found(key) => key,
            KeyMatch::UnknownKid => {
                return Err(unverified(
                    ReasonCode::UnknownKid,
                    format!(
                        "the token's kid is not among the keys of issuer {:?}",
                        issuer.id
                    ),
                ));
            }
            KeyMatch::NoKey => {
                return Err(unverified(
                    ReasonCode::NoMatchingKey,
                    format!(
                        "no key of issuer {:?} fits the token's kid and alg",
                        issuer.id
                    ),
                ));
            }
        };
        verify(seen, issuer, key, &self.limits, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::Algorithm;
    use serde_json::Value;

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
        assert_eq!(seen.iss(), Some("https://issuer"));
    }

    /// One signature, one encoding: a part whose last character carries unused bits that are
    /// not zero is refused, as RFC 4648 §3.5 lets a decoder do and the `base64` crate did.
    #[test]
    fn a_part_with_stray_trailing_bits_is_not_a_jwt() {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
        // 11 bytes: the last of 15 characters carries two unused bits.
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"x"}"#);
        let last = payload.as_bytes()[payload.len() - 1];
        let index = ALPHABET.iter().position(|&c| c == last).unwrap();
        assert_eq!(index & 0b11, 0);
        let stray = format!(
            "{}{}",
            &payload[..payload.len() - 1],
            ALPHABET[index | 1] as char
        );
        let policy = VerifyPolicy::default();
        inspect(&format!("{header}.{payload}.c2ln"), &policy).unwrap();
        let err = inspect(&format!("{header}.{stray}.c2ln"), &policy).unwrap_err();
        assert_eq!(err.reason_code(), "not_a_jwt", "{}", err.description);
        let err = inspect(&format!("{stray}.{payload}.c2ln"), &policy).unwrap_err();
        assert_eq!(err.reason_code(), "not_a_jwt", "{}", err.description);
    }

    proptest::proptest! {
        /// The token's parts are read and written with base64-simd: it accepts exactly what
        /// the `base64` crate's strict base64url accepts (no padding, no stray bits, nothing
        /// outside the alphabet), long enough for its SIMD path, and writes the same text.
        #[test]
        fn simd_base64url_reads_and_writes_as_the_base64_crate(
            text in "[A-Za-z0-9_-]{0,300}",
            stray in proptest::option::of((0usize..300, proptest::sample::select(vec!['=', '+', '/', '.', ' ', '\n', '\0', 'é']))),
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300),
        ) {
            let mut text = text;
            if let Some((at, c)) = stray {
                text.insert(at.min(text.len()), c);
            }
            let simd = base64_simd::URL_SAFE_NO_PAD;
            proptest::prop_assert_eq!(simd.decode_to_vec(&text).ok(), URL_SAFE_NO_PAD.decode(&text).ok());
            let encoded = URL_SAFE_NO_PAD.encode(&bytes);
            proptest::prop_assert_eq!(&simd.encode_to_string(&bytes), &encoded);
            proptest::prop_assert_eq!(simd.decode_to_vec(&encoded).ok(), Some(bytes));
        }
    }

    /// The unverified `iss` chooses an entry only when it is one string; it comes from the
    /// same reading of the payload that the claim checks use after the signature.
    #[test]
    fn only_an_iss_given_once_as_a_string_chooses_the_issuer() {
        let iss_of = |payload: &str| {
            let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#);
            let token = format!("{header}.{}.sig", URL_SAFE_NO_PAD.encode(payload));
            inspect(&token, &VerifyPolicy::default())
                .unwrap()
                .iss()
                .map(str::to_owned)
        };
        let url = Some("https://i".to_owned());
        for (payload, expected) in [
            (r#"{"iss":"https://i"}"#, url.clone()),
            (r#"{"\u0069ss":"https:\/\/i"}"#, url.clone()),
            (r#"{"exp":1,"exp":2,"iss":"https://i"}"#, url.clone()),
            (r#"{"sub":"x"}"#, None),
            (r#"{"iss":7}"#, None),
            (r#"{"iss":null}"#, None),
            (r#"{"iss":["https://i"]}"#, None),
            (r#"{"iss":"https://i","iss":"https://i"}"#, None),
            (
                r#"{"exp":1,"exp":2,"iss":"https://i","iss":"https://j"}"#,
                None,
            ),
            (r#"{"iss":"https://i""#, None),
            (r#"["https://i"]"#, None),
            ("not json", None),
        ] {
            assert_eq!(iss_of(payload), expected, "{payload}");
        }
    }

    /// Issue 14: a header with a non-string `kid` or `typ`, or a member given twice, was
    /// answered "algorithm "RS256" is never accepted".
    #[test]
    fn inspect_says_what_is_wrong_with_a_header() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"iss":"x"}"#);
        for (header, needle) in [
            (r#"{"alg":"RS256","kid":5}"#, "kid"),
            (r#"{"alg":"RS256","typ":["JWT"]}"#, "typ"),
            (r#"{"alg":"RS256","kid":"a","kid":"b"}"#, "\"kid\" twice"),
            (r#"{"alg":"RS256","alg":"none"}"#, "\"alg\" twice"),
            (r#"{"alg":5}"#, "alg"),
            (r#"{"kid":"a"}"#, "no alg"),
            (r#"[1]"#, "JSON object"),
        ] {
            let token = format!("{}.{payload}.c2ln", URL_SAFE_NO_PAD.encode(header));
            let err = inspect(&token, &VerifyPolicy::default()).unwrap_err();
            assert!(
                !err.description.contains("never accepted"),
                "{header}: {}",
                err.description
            );
            assert!(
                err.description.contains(needle),
                "{header}: {}",
                err.description
            );
        }
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
            {"kty": "RSA", "kid": "small", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "kid": "enc", "use": "enc", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "weird", "kid": "w"},
            {"kty": "EC", "kid": "ec", "crv": "P-256", "alg": "ES256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
        ]}"#;
        let set = KeySet::from_jwks(jwks).unwrap();
        assert_eq!(set.len(), 1);
        assert!(!set.has_kid("hmac"));
        assert!(!set.has_kid("small"));
        // A usable key, skipped only because it is for encryption (issue 14: the test's
        // encryption key used to be refused for its size first, so the `use` filter was
        // never tested).
        assert!(!set.has_kid("enc"));
        assert!(matches!(
            set.find(Some("enc"), Algorithm::ES256),
            KeyMatch::UnknownKid
        ));
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

    /// A P-256 issuer for pure tests: signs compact JWS and exposes its JWK.
    struct Signer {
        pair: aws_lc_rs::signature::EcdsaKeyPair,
        rng: aws_lc_rs::rand::SystemRandom,
    }

    impl Signer {
        fn new() -> Signer {
            use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
            Signer {
                pair: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
                rng: aws_lc_rs::rand::SystemRandom::new(),
            }
        }

        fn jwk(&self, extra: Value) -> Value {
            use aws_lc_rs::signature::KeyPair as _;
            let point = self.pair.public_key().as_ref();
            let mut jwk = serde_json::json!({
                "kty": "EC", "crv": "P-256", "kid": "k1",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
            });
            jwk.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            jwk
        }

        fn keys(&self, extra: Value) -> KeySet {
            let jwks = serde_json::json!({ "keys": [self.jwk(extra)] });
            KeySet::from_jwks(jwks.to_string().as_bytes()).unwrap()
        }

        fn sign_raw(&self, header: &str, payload: &str) -> String {
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header),
                URL_SAFE_NO_PAD.encode(payload)
            );
            let signature = self.pair.sign(&self.rng, input.as_bytes()).unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
        }

        fn sign(&self, payload: &str) -> String {
            self.sign_raw(r#"{"alg":"ES256","kid":"k1"}"#, payload)
        }
    }

    const NOW: u64 = 1_800_000_000;

    fn issuer() -> OidcPolicy {
        OidcPolicy {
            id: "ci".into(),
            url: "https://ci.example".into(),
            audiences: vec!["claimex".into()],
            algorithms: vec![Algorithm::ES256],
        }
    }

    fn good_claims() -> Value {
        serde_json::json!({
            "iss": "https://ci.example", "aud": "claimex", "sub": "repo:a/b", "jti": "j1",
            "iat": NOW - 10, "exp": NOW + 300, "nbf": NOW - 10, "ref": "refs/heads/main",
        })
    }

    fn run(token: &str, keys: &KeySet) -> Result<Verified, ExchangeError> {
        let policy = VerifyPolicy::default();
        let seen = inspect(token, &policy)?;
        let KeyMatch::Found(key) = keys.find(seen.header.kid.as_deref(), seen.header.alg) else {
            return Err(unverified(ReasonCode::NoMatchingKey, "no key"));
        };
        verify(seen, &issuer(), key, &policy, NOW)
    }

    #[test]
    fn a_good_token_verifies_and_keeps_its_payload_as_signed() {
        let signer = Signer::new();
        let payload = good_claims().to_string();
        let verified = run(&signer.sign(&payload), &signer.keys(serde_json::json!({}))).unwrap();
        assert_eq!(verified.claims_json, payload);
        assert_eq!(verified.sub.as_deref(), Some("repo:a/b"));
        assert_eq!(verified.jti.as_deref(), Some("j1"));
        assert_eq!(verified.iss.as_deref(), Some("https://ci.example"));
    }

    #[test]
    fn claim_checks_refuse_what_rfc_8725_asks() {
        let signer = Signer::new();
        let keys = signer.keys(serde_json::json!({}));
        let with = |change: &dyn Fn(&mut Value)| {
            let mut claims = good_claims();
            change(&mut claims);
            signer.sign(&claims.to_string())
        };
        let cases: Vec<(String, &str)> = vec![
            (with(&|c| c["exp"] = (NOW - 61).into()), "expired"),
            (with(&|c| c["exp"] = (-5).into()), "exp claim is malformed"),
            (
                with(&|c| c["exp"] = "soon".into()),
                "exp claim is malformed",
            ),
            (with(&|c| c["nbf"] = (NOW + 61).into()), "nbf"),
            (
                with(&|c| c["iat"] = "yesterday".into()),
                "iat claim is malformed",
            ),
            (
                with(&|c| {
                    c.as_object_mut().unwrap().remove("iat");
                }),
                "no iat",
            ),
            (
                with(&|c| c["aud"] = serde_json::json!(["x", 1])),
                "aud claim is malformed",
            ),
            (
                with(&|c| c["aud"] = serde_json::json!(["x", "y"])),
                "aud does not include",
            ),
            (
                with(&|c| c["iss"] = serde_json::json!(["https://ci.example"])),
                "iss is not",
            ),
            (
                with(&|c| {
                    c.as_object_mut().unwrap().remove("aud");
                }),
                "no aud",
            ),
            (
                with(&|c| {
                    c.as_object_mut().unwrap().remove("iss");
                }),
                "no iss",
            ),
            // Two exp claims: parsers disagree on which counts, so neither does.
            (
                signer.sign(&good_claims().to_string().replacen(
                    '{',
                    &format!("{{\"exp\":{},", NOW + 9999),
                    1,
                )),
                "exp claim is given twice",
            ),
            (signer.sign("[1,2,3]"), "not a valid JSON object"),
            // serde would quote the value; the caller is told only what is wrong.
            (
                signer.sign(r#""secret-looking text""#),
                "not a valid JSON object",
            ),
            (signer.sign("not json"), "not a valid JSON object"),
        ];
        for (token, needle) in cases {
            let err = run(&token, &keys).unwrap_err();
            assert_eq!(
                err.refusal,
                Refusal::Unverified,
                "{needle}: {}",
                err.description
            );
            assert!(
                err.description.contains(needle),
                "{needle}: {}",
                err.description
            );
            assert!(
                !err.description.contains("secret-looking"),
                "the payload is quoted: {}",
                err.description
            );
        }
        // A fractional NumericDate is valid (RFC 7519 §2).
        let ok = with(&|c| c["exp"] = ((NOW + 100) as f64 + 0.5).into());
        run(&ok, &keys).unwrap();
    }

    #[test]
    fn the_signature_covers_header_and_payload() {
        let signer = Signer::new();
        let keys = signer.keys(serde_json::json!({}));
        let token = signer.sign(&good_claims().to_string());
        let (input, signature) = token.rsplit_once('.').unwrap();
        let (header, _) = input.split_once('.').unwrap();
        let mut other = good_claims();
        other["sub"] = "repo:evil/x".into();
        let forged = format!(
            "{header}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(other.to_string())
        );
        let err = run(&forged, &keys).unwrap_err();
        assert!(err.description.contains("signature"), "{}", err.description);
        // Another key with the same kid.
        let err = run(&Signer::new().sign(&good_claims().to_string()), &keys).unwrap_err();
        assert!(err.description.contains("signature"), "{}", err.description);
    }

    #[test]
    fn keys_serve_only_the_algorithms_their_type_and_alg_allow() {
        let signer = Signer::new();
        let keys = signer.keys(serde_json::json!({}));
        assert!(matches!(
            keys.find(Some("k1"), Algorithm::ES256),
            KeyMatch::Found(_)
        ));
        for alg in [
            Algorithm::ES384,
            Algorithm::RS256,
            Algorithm::PS256,
            Algorithm::EdDSA,
        ] {
            assert!(
                matches!(keys.find(Some("k1"), alg), KeyMatch::NoKey),
                "{alg:?}"
            );
        }
        // A P-256 JWK that claims to be an RS256 key or a P-384 key is not usable at all.
        for extra in [
            serde_json::json!({"alg": "RS256"}),
            serde_json::json!({"crv": "P-384"}),
        ] {
            let jwks = serde_json::json!({ "keys": [signer.jwk(extra.clone())] });
            assert!(
                KeySet::from_jwks(jwks.to_string().as_bytes()).is_err(),
                "{extra}"
            );
        }
    }

    #[test]
    fn critical_header_extensions_are_refused() {
        let signer = Signer::new();
        let token = signer.sign_raw(
            r#"{"alg":"ES256","kid":"k1","crit":["exp"],"exp":1}"#,
            &good_claims().to_string(),
        );
        let err = inspect(&token, &VerifyPolicy::default()).unwrap_err();
        assert!(err.description.contains("crit"), "{}", err.description);
    }
}
