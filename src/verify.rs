//! Verifying an inbound token against one registered issuer, by the rules of RFC 8725.
//!
//! Pure logic, no I/O: the caller supplies the issuer's [`KeySet`] (fetched and cached by an
//! adapter) and the clock. The checks, in order: size and shape of the compact JWS, no
//! critical header extensions; the header's `alg` is on the issuer's allow-list (asymmetric
//! only, so never `none` and never HMAC with a public key); the key is chosen by `kid` and
//! must fit that algorithm (key type, curve, and the JWK's own `alg`); the signature; then
//! `exp` and `iat` required, `nbf` honoured, all within a bounded leeway; `iss` equal to the
//! registered URL; `aud` intersecting the accepted audiences; and the token not older than
//! the maximum age.
//!
//! jsonwebtoken decodes the header and the JWKs; aws-lc-rs checks signatures with keys
//! parsed once per JWKS fetch; the payload is decoded once and its registered claims read in
//! one pass, only after the signature holds.

use std::collections::HashMap;
use std::time::Duration;

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, VerificationAlgorithm};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, Header};
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

/// A token whose shape has been checked but whose signature has not. Nothing here is
/// trusted: the header only selects the key, and the payload is handed on only once
/// [`verify`] has checked the signature over it.
#[derive(Debug, Clone)]
pub struct Unverified<'t> {
    /// The decoded JOSE header.
    pub header: Header,
    /// `base64url(header) "." base64url(payload)`, the bytes the signature covers.
    signing_input: &'t str,
    /// The signature, still base64url-encoded.
    signature: &'t str,
    /// The payload, decoded once (UTF-8 JSON text, not yet parsed).
    payload: String,
}

impl Unverified<'_> {
    /// The token's `iss`, unverified: only to choose which registered issuer verifies it.
    pub fn iss(&self) -> Option<String> {
        serde_json::from_str::<IssOnly>(&self.payload).ok()?.iss
    }
}

/// Checks size and shape, reads the header and decodes the payload, trusting neither.
pub fn inspect<'t>(token: &'t str, policy: &VerifyPolicy) -> Result<Unverified<'t>, ExchangeError> {
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
    let not_compact = || {
        malformed(
            "the body is not a JWT in compact serialization (three base64url parts joined by dots)",
        )
    };
    if !is_compact_charset(token.as_bytes()) {
        return Err(not_compact());
    }
    let (signing_input, signature) = token.rsplit_once('.').ok_or_else(not_compact)?;
    let (encoded_header, encoded_payload) =
        signing_input.split_once('.').ok_or_else(not_compact)?;
    if encoded_payload.contains('.') {
        return Err(not_compact());
    }
    // jsonwebtoken's own Header type, read from the header part alone (its decode_header
    // would scan the whole token for the dots again).
    let header: Header = URL_SAFE_NO_PAD
        .decode(encoded_header)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| describe_bad_header(encoded_header))?;
    if header.crit.is_some() {
        // RFC 7515 §4.1.11: a recipient must refuse critical extensions it does not
        // understand, and claimex understands none.
        return Err(unverified(
            "the token's header lists critical extensions (crit), which claimex does not support",
        ));
    }
    let payload = URL_SAFE_NO_PAD
        .decode(encoded_payload)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(|| malformed("the token's payload is not base64url-encoded UTF-8"))?;
    Ok(Unverified {
        header,
        signing_input,
        signature,
        payload,
    })
}

/// Whether every byte is a base64url character or a dot. Written without early exit so
/// the compiler can check many bytes per instruction (tokens are up to 16 KiB).
fn is_compact_charset(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| {
        ok & (b.is_ascii_lowercase()
            | b.is_ascii_uppercase()
            | b.is_ascii_digit()
            | (b == b'-')
            | (b == b'_')
            | (b == b'.'))
    })
}

/// Says why a header did not decode: an unsupported `alg` (such as `none`) is a token that
/// fails verification; anything else is not a JWT at all.
fn describe_bad_header(encoded_header: &str) -> ExchangeError {
    let alg = URL_SAFE_NO_PAD
        .decode(encoded_header)
        .ok()
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

/// One public key of an issuer, parsed once per JWKS fetch for every algorithm it may verify.
pub struct VerifyingKey {
    /// One parsed key per algorithm the JWK allows (its `kty`, `crv` and `alg` decide).
    by_alg: Vec<(Algorithm, ParsedPublicKey)>,
}

impl VerifyingKey {
    /// Parses a JWK. RSA keys serve RS256/384/512 and PS256/384/512 (2048 bits at least);
    /// EC keys the one ES algorithm of their curve; OKP Ed25519 keys EdDSA. A JWK's own
    /// `alg` narrows that to one. Symmetric and unknown keys are refused.
    pub fn from_jwk(jwk: &Jwk, restricted_to: Option<Algorithm>) -> Result<VerifyingKey, String> {
        use Algorithm::*;
        let candidates: &[Algorithm] = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => &[RS256, RS384, RS512, PS256, PS384, PS512],
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => &[ES256],
                EllipticCurve::P384 => &[ES384],
                _ => return Err("unsupported EC curve".into()),
            },
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => &[EdDSA],
            _ => return Err("not an asymmetric signing key claimex supports".into()),
        };
        // jsonwebtoken decodes the JWK's members; aws-lc-rs parses and checks the key.
        let decoded = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
        let mut by_alg = Vec::with_capacity(candidates.len());
        for &alg in candidates {
            if restricted_to.is_some_and(|r| r != alg) {
                continue;
            }
            let unsupported = || format!("{alg:?} does not fit the key");
            let parsed = match decoded.kind() {
                DecodingKeyKind::RsaModulusExponent { n, e } => {
                    sig::RsaPublicKeyComponents { n, e }
                        .to_parsed_public_key(rsa_parameters(alg).ok_or_else(unsupported)?)
                }
                DecodingKeyKind::SecretOrDer(point) => {
                    ParsedPublicKey::new(point_parameters(alg).ok_or_else(unsupported)?, point)
                }
            }
            .map_err(|e| format!("the key is rejected: {e}"))?;
            by_alg.push((alg, parsed));
        }
        if by_alg.is_empty() {
            return Err("the key's alg does not fit its key type".into());
        }
        Ok(VerifyingKey { by_alg })
    }

    /// Whether this key may verify tokens signed with `alg`.
    pub fn supports(&self, alg: Algorithm) -> bool {
        self.by_alg.iter().any(|(a, _)| *a == alg)
    }

    /// Checks `signature` over `message` made with `alg`.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        self.by_alg
            .iter()
            .find(|(a, _)| *a == alg)
            .is_some_and(|(_, key)| key.verify_sig(message, signature).is_ok())
    }
}

/// aws-lc-rs's parameters for an RSA algorithm (keys of 2048 to 8192 bits).
fn rsa_parameters(alg: Algorithm) -> Option<&'static sig::RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

/// aws-lc-rs's parameters for an algorithm whose key is a public point (EC, Ed25519); JWS
/// ECDSA signatures are fixed-length `r || s`.
fn point_parameters(alg: Algorithm) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match alg {
        Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
        Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDSA => &sig::ED25519,
        _ => return None,
    })
}

/// One issuer's verification keys, indexed by `kid`.
#[derive(Default)]
pub struct KeySet {
    by_kid: HashMap<String, VerifyingKey>,
    anonymous: Vec<VerifyingKey>,
}

/// How a key lookup ended.
pub enum KeyMatch<'a> {
    /// The key to verify with.
    Found(&'a VerifyingKey),
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
            if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
                continue;
            }
            let Ok(key) = VerifyingKey::from_jwk(&jwk, alg) else {
                continue;
            };
            match jwk.common.key_id {
                Some(kid) => {
                    set.by_kid.insert(kid, key);
                }
                None => set.anonymous.push(key),
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
        match kid {
            Some(kid) => match self.by_kid.get(kid) {
                Some(k) if k.supports(alg) => KeyMatch::Found(k),
                Some(_) => KeyMatch::NoKey,
                None => KeyMatch::UnknownKid,
            },
            None => {
                let mut candidates = self
                    .by_kid
                    .values()
                    .chain(&self.anonymous)
                    .filter(|k| k.supports(alg));
                match (candidates.next(), candidates.next()) {
                    (Some(only), None) => KeyMatch::Found(only),
                    _ => KeyMatch::NoKey,
                }
            }
        }
    }
}

/// The registered claims claimex itself reads; every other claim stays in the raw payload
/// for the mapper, so the payload is never turned into a map on the hot path.
#[derive(Debug, Clone, Default)]
pub struct Registered {
    /// `iss`, when it is a string.
    pub iss: Option<String>,
    /// `sub`, when it is a string.
    pub sub: Option<String>,
    /// `jti`, when it is a string.
    pub jti: Option<String>,
}

/// A token that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The registered claims claimex reads.
    pub registered: Registered,
    /// The verified payload exactly as signed (a JSON object), for the mapper.
    pub claims_json: String,
}

/// Checks the token's signature with `key` and its claims against `issuer` at time `now`
/// (seconds since the Unix epoch): `exp` and `iat` required, `nbf` honoured, each within the
/// leeway; `iss` equal to the registered URL; `aud` naming an accepted audience; not older
/// than the maximum age. The claims are read once, after the signature is checked.
pub fn verify(
    seen: Unverified<'_>,
    issuer: &Issuer,
    key: &VerifyingKey,
    policy: &VerifyPolicy,
    now: u64,
) -> Result<Verified, ExchangeError> {
    let alg = seen.header.alg;
    if !issuer.algorithms.contains(&alg) {
        return Err(unverified(format!(
            "the token is signed with {alg:?}, which issuer {:?} does not accept",
            issuer.id
        )));
    }
    if alg.family() == AlgorithmFamily::Hmac {
        return Err(unverified("symmetric algorithms are never accepted"));
    }
    let signature = URL_SAFE_NO_PAD
        .decode(seen.signature)
        .map_err(|_| unverified("the token's signature is not base64url"))?;
    if !key.verify(alg, seen.signing_input.as_bytes(), &signature) {
        return Err(unverified("the token's signature does not verify"));
    }
    // serde's messages may quote the payload: none of them reaches the caller or the log.
    let claims: Claims = serde_json::from_str(&seen.payload)
        .map_err(|_| unverified("the token's payload is not a valid JSON object"))?;
    if let Some(name) = claims.duplicate {
        return Err(unverified(format!(
            "the token's {name} claim is given twice; parsers disagree on which counts"
        )));
    }
    claims.check(issuer, policy, now)?;
    Ok(Verified {
        registered: Registered {
            iss: claims.iss.into_text(),
            sub: claims.sub.into_text(),
            jti: claims.jti.into_text(),
        },
        claims_json: seen.payload,
    })
}

/// The value of one registered claim as it came, before its type is checked.
#[derive(Debug, Default)]
enum Claim {
    /// Absent.
    #[default]
    Missing,
    /// A string.
    Text(String),
    /// A non-negative number, as seconds (a fraction is dropped, RFC 7519 §2).
    Seconds(u64),
    /// A list whose members are all strings.
    Texts(Vec<String>),
    /// Anything else.
    Other,
}

impl Claim {
    fn into_text(self) -> Option<String> {
        match self {
            Claim::Text(s) => Some(s),
            _ => None,
        }
    }

    /// A NumericDate claim that must be present.
    fn required_seconds(&self, name: &str) -> Result<u64, ExchangeError> {
        match self {
            Claim::Missing => Err(unverified(format!("the token has no {name} claim"))),
            other => other.optional_seconds(name).map(Option::unwrap_or_default),
        }
    }

    fn optional_seconds(&self, name: &str) -> Result<Option<u64>, ExchangeError> {
        match self {
            Claim::Missing => Ok(None),
            Claim::Seconds(s) => Ok(Some(*s)),
            _ => Err(unverified(format!(
                "the token's {name} claim is malformed: it must be a number of seconds"
            ))),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Claim {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Claim, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Claim;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a claim value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Claim, E> {
                Ok(Claim::Text(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Claim, E> {
                Ok(Claim::Text(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Claim, E> {
                Ok(Claim::Seconds(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Claim, E> {
                Ok(u64::try_from(v).map_or(Claim::Other, Claim::Seconds))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Claim, E> {
                Ok(if v.is_finite() && v >= 0.0 && v < u64::MAX as f64 {
                    Claim::Seconds(v as u64)
                } else {
                    Claim::Other
                })
            }
            fn visit_bool<E>(self, _: bool) -> Result<Claim, E> {
                Ok(Claim::Other)
            }
            fn visit_unit<E>(self) -> Result<Claim, E> {
                Ok(Claim::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Claim, A::Error> {
                let mut texts = Vec::new();
                let mut all_text = true;
                while let Some(item) = seq.next_element::<Claim>()? {
                    match item {
                        Claim::Text(s) if all_text => texts.push(s),
                        _ => all_text = false,
                    }
                }
                Ok(if all_text {
                    Claim::Texts(texts)
                } else {
                    Claim::Other
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Claim, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Claim::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// The registered claims of a payload, read in one pass over the JSON object. Every other
/// member is skipped without being built; a registered claim given twice is refused, since
/// JSON parsers disagree on which one counts (RFC 8725 §2.8).
#[derive(Debug, Default)]
struct Claims {
    iss: Claim,
    sub: Claim,
    jti: Claim,
    aud: Claim,
    exp: Claim,
    nbf: Claim,
    iat: Claim,
    /// The first registered claim found twice.
    duplicate: Option<&'static str>,
}

impl<'de> serde::Deserialize<'de> for Claims {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Claims, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Claims;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object of claims")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Claims, A::Error> {
                let mut claims = Claims::default();
                while let Some(name) = map.next_key::<Name>()? {
                    let (slot, label) = match name {
                        Name::Iss => (&mut claims.iss, "iss"),
                        Name::Sub => (&mut claims.sub, "sub"),
                        Name::Jti => (&mut claims.jti, "jti"),
                        Name::Aud => (&mut claims.aud, "aud"),
                        Name::Exp => (&mut claims.exp, "exp"),
                        Name::Nbf => (&mut claims.nbf, "nbf"),
                        Name::Iat => (&mut claims.iat, "iat"),
                        Name::Other => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    if matches!(slot, Claim::Missing) {
                        *slot = map.next_value()?;
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                        claims.duplicate.get_or_insert(label);
                    }
                }
                Ok(claims)
            }
        }
        d.deserialize_map(V)
    }
}

/// The name of a payload member, matched without allocating.
enum Name {
    Iss,
    Sub,
    Jti,
    Aud,
    Exp,
    Nbf,
    Iat,
    Other,
}

impl<'de> serde::Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Name, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Name;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a claim name")
            }
            fn visit_str<E>(self, v: &str) -> Result<Name, E> {
                Ok(match v {
                    "iss" => Name::Iss,
                    "sub" => Name::Sub,
                    "jti" => Name::Jti,
                    "aud" => Name::Aud,
                    "exp" => Name::Exp,
                    "nbf" => Name::Nbf,
                    "iat" => Name::Iat,
                    _ => Name::Other,
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

impl Claims {
    fn check(&self, issuer: &Issuer, policy: &VerifyPolicy, now: u64) -> Result<(), ExchangeError> {
        let leeway = policy.leeway.as_secs();
        let exp = self.exp.required_seconds("exp")?;
        if exp.saturating_add(leeway) < now {
            return Err(unverified("the token has expired"));
        }
        if let Some(nbf) = self.nbf.optional_seconds("nbf")?
            && nbf > now.saturating_add(leeway)
        {
            return Err(unverified(
                "the token is not valid yet (nbf lies in the future)",
            ));
        }
        match &self.iss {
            Claim::Text(iss) if *iss == issuer.url => {}
            Claim::Missing => return Err(unverified("the token has no iss claim")),
            _ => {
                return Err(unverified(format!(
                    "the token's iss is not {:?}, the URL registered for issuer {:?}",
                    issuer.url, issuer.id
                )));
            }
        }
        let accepted = |aud: &String| issuer.audiences.contains(aud);
        let aud_ok = match &self.aud {
            Claim::Missing => return Err(unverified("the token has no aud claim")),
            Claim::Text(aud) => accepted(aud),
            Claim::Texts(list) => list.iter().any(accepted),
            _ => return Err(unverified("the token's aud claim is malformed")),
        };
        if !aud_ok {
            return Err(unverified(format!(
                "the token's aud does not include an audience accepted for issuer {:?}",
                issuer.id
            )));
        }
        let iat = self.iat.required_seconds("iat")?;
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
        Ok(())
    }
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
        assert_eq!(seen.iss().as_deref(), Some("https://issuer"));
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

    fn issuer() -> Issuer {
        struct Nop;
        #[async_trait::async_trait]
        impl crate::mapping::ClaimsMapper for Nop {
            fn sha256(&self) -> &str {
                ""
            }
            async fn map(&self, _: &crate::mapping::MapRequest<'_>) -> crate::mapping::MapOutcome {
                unreachable!()
            }
        }
        Issuer {
            id: "ci".into(),
            url: "https://ci.example".into(),
            audiences: vec!["claimex".into()],
            algorithms: vec![Algorithm::ES256],
            mapper_config: "null".into(),
            output_audiences: vec!["sts.amazonaws.com".into()],
            token_lifetime: None,
            mapper: std::sync::Arc::new(Nop),
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
            return Err(unverified("no key"));
        };
        verify(seen, &issuer(), key, &policy, NOW)
    }

    #[test]
    fn a_good_token_verifies_and_keeps_its_payload_as_signed() {
        let signer = Signer::new();
        let payload = good_claims().to_string();
        let verified = run(&signer.sign(&payload), &signer.keys(serde_json::json!({}))).unwrap();
        assert_eq!(verified.claims_json, payload);
        assert_eq!(verified.registered.sub.as_deref(), Some("repo:a/b"));
        assert_eq!(verified.registered.jti.as_deref(), Some("j1"));
        assert_eq!(
            verified.registered.iss.as_deref(),
            Some("https://ci.example")
        );
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
