//! An issuer's verification keys: a JWKS parsed once per fetch into aws-lc-rs public keys,
//! each bound to the algorithms its type allows, and the choice of a key for a token by
//! `kid` and `alg`.
//!
//! jsonwebtoken decodes the JWK members; aws-lc-rs parses and checks the keys. RSA keys
//! serve RS256/384/512 and PS256/384/512 (2048 bits at least), EC keys the one ES algorithm
//! of their curve, OKP Ed25519 keys EdDSA; a JWK's own `alg` narrows that to one. Keys whose
//! `use` is not `sig`, symmetric keys and keys that do not parse are skipped.

use std::collections::HashMap;

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, VerificationAlgorithm};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};
use serde_json::Value;

/// Why a JWKS document gave no keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// The document is not `{"keys": [...]}`.
    #[error("the JWKS is not valid: {0}")]
    Invalid(String),
    /// No key of the document can verify signatures.
    #[error("the JWKS has no usable signing key")]
    NoUsableKey,
}

/// Why one JWK cannot verify signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Symmetric, unknown, or of a curve claimex does not verify.
    #[error("not an asymmetric signing key claimex supports")]
    Unsupported,
    /// The JWK's `alg` names an algorithm its key type cannot serve.
    #[error("the key's alg does not fit its key type")]
    AlgMismatch,
    /// The key material does not parse or is too weak.
    #[error("the key is rejected: {0}")]
    Rejected(String),
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
    pub fn from_jwk(jwk: &Jwk, restricted_to: Option<Algorithm>) -> Result<VerifyingKey, KeyError> {
        use Algorithm::*;
        let candidates: &[Algorithm] = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => &[RS256, RS384, RS512, PS256, PS384, PS512],
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => &[ES256],
                EllipticCurve::P384 => &[ES384],
                _ => return Err(KeyError::Unsupported),
            },
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => &[EdDSA],
            _ => return Err(KeyError::Unsupported),
        };
        // jsonwebtoken decodes the JWK's members; aws-lc-rs parses and checks the key.
        let decoded = DecodingKey::from_jwk(jwk).map_err(|e| KeyError::Rejected(e.to_string()))?;
        // aws-lc-rs checks an RSA key's size when it verifies, not when it parses: refuse a
        // small one here, so it never enters the key set.
        if let DecodingKeyKind::RsaModulusExponent { n, .. } = decoded.kind() {
            let bits = rsa_bits(n);
            if bits < 2048 {
                return Err(KeyError::Rejected(format!(
                    "an RSA key of {bits} bits: at least 2048 are needed"
                )));
            }
        }
        let mut by_alg = Vec::with_capacity(candidates.len());
        for &alg in candidates {
            if restricted_to.is_some_and(|r| r != alg) {
                continue;
            }
            let parsed = match decoded.kind() {
                DecodingKeyKind::RsaModulusExponent { n, e } => {
                    sig::RsaPublicKeyComponents { n, e }
                        .to_parsed_public_key(rsa_parameters(alg).ok_or(KeyError::AlgMismatch)?)
                }
                DecodingKeyKind::SecretOrDer(point) => {
                    ParsedPublicKey::new(point_parameters(alg).ok_or(KeyError::AlgMismatch)?, point)
                }
            }
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
            by_alg.push((alg, parsed));
        }
        if by_alg.is_empty() {
            return Err(KeyError::AlgMismatch);
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

/// The size of an RSA modulus given big-endian, in bits.
fn rsa_bits(n: &[u8]) -> usize {
    let n = match n.iter().position(|&b| b != 0) {
        Some(first) => &n[first..],
        None => return 0,
    };
    n.len() * 8 - n[0].leading_zeros() as usize
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
    pub fn from_jwks(bytes: &[u8]) -> Result<KeySet, JwksError> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<Value>,
        }
        let document: Document =
            serde_json::from_slice(bytes).map_err(|e| JwksError::Invalid(e.to_string()))?;
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
            return Err(JwksError::NoUsableKey);
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
