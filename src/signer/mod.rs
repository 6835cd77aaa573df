//! Signing keys: the trait the core signs through, and the published key set.
//!
//! The core never sees key material. It asks a [`KeyStore`] for the key that signs now, builds
//! the JWS header from that key's `alg` and `kid`, and hands the signing input back to the
//! same key, so a rotation between the two steps cannot produce a header that names one key
//! and a signature made by another.
//!
//! - the port: [`SigningKey`], [`KeyStore`], [`SignError`], and the `[signer]` settings;
//! - [`jwk`]: public keys as JWKs, thumbprints, SPKI and DER conversions (pure);
//! - [`rotation`]: the rotation state and its steps (pure);
//! - adapters: [`local`] (a key file, the embedded default) and [`kms`] (AWS KMS).

pub mod jwk;
pub mod kms;
pub mod local;
pub mod rotation;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

pub use jwk::PublicJwk;

use crate::settings::SettingError;

/// The JWS algorithms claimex signs with. Both are accepted by AWS STS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    #[serde(rename = "RS256")]
    Rs256,
    /// ECDSA on P-256 with SHA-256.
    #[serde(rename = "ES256")]
    Es256,
}

impl SigningAlg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Rs256 => "RS256",
            SigningAlg::Es256 => "ES256",
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a signature could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The signing service cannot be reached or refused for now; retrying later may work.
    #[error("the signing key is temporarily unavailable: {0}")]
    Unavailable(String),
    /// The key or its configuration is broken; retrying will not help.
    #[error("signing failed: {0}")]
    Failed(String),
}

/// One key able to sign, with the identity that goes in the JWS header.
#[async_trait]
pub trait SigningKey: Send + Sync {
    /// The algorithm of the signatures this key makes.
    fn alg(&self) -> SigningAlg;
    /// The key id published in the JWKS and written in the header.
    fn kid(&self) -> &str;
    /// Signs the JWS signing input (`base64url(header) "." base64url(payload)`) and returns
    /// the JWS signature bytes (for ES256 the raw 64-byte `r || s`).
    async fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignError>;
}

/// Whether the signer can sign, as far as its last signatures tell, for `/healthz`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SignerHealth {
    /// The last signature failed (and none succeeded since): the key cannot sign now.
    pub failing: bool,
    /// Why the last failed signature failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When a signature last failed, seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error_unix: Option<u64>,
    /// When a signature last succeeded, seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_unix: Option<u64>,
}

/// Where the signing key and the published keys come from.
pub trait KeyStore: Send + Sync {
    /// The key that signs now.
    fn signing_key(&self) -> Result<Arc<dyn SigningKey>, SignError>;
    /// Every key verifiers should trust now: the signing key, and during a rotation the
    /// previous and pending ones.
    fn published(&self) -> Vec<PublicJwk>;
    /// The signing key's health: by default always healthy (a local key cannot become
    /// unreachable); a remote signer reports its last signatures.
    fn health(&self) -> SignerHealth {
        SignerHealth::default()
    }
}

/// Signer backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignerBackend {
    /// A local PKCS#8 key file.
    Local,
    /// AWS KMS.
    Kms,
}

/// Where the signing key lives: the `[signer]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignerSettings {
    /// `local` or `kms`.
    pub backend: SignerBackend,
    /// The key file (local backend); generated when missing.
    pub path: PathBuf,
    /// The algorithm of a generated local key.
    pub alg: SigningAlg,
    /// Key files published besides the signing key (local backend, rotation): public keys
    /// (PEM `PUBLIC KEY`, e.g. `openssl pkey -pubout`), or private keys whose public half is
    /// published.
    #[serde(deserialize_with = "crate::settings::list_or_csv")]
    pub published_paths: Vec<PathBuf>,
    /// The KMS key that signs (id, ARN or alias).
    pub kms_key_id: Option<String>,
    /// KMS keys published besides the signing key (previous and pending, during rotation).
    #[serde(deserialize_with = "crate::settings::list_or_csv")]
    pub kms_published_key_ids: Vec<String>,
    /// An SSM parameter naming the KMS keys, JSON `{"current": KEY, "published": [KEY, ...]}`,
    /// re-read every `registry.refresh_secs` and edited by `claimex keys stage|promote|retire`.
    /// When it exists it takes precedence over `kms_key_id` and `kms_published_key_ids`.
    pub kms_keys_parameter: Option<String>,
}

impl Default for SignerSettings {
    fn default() -> SignerSettings {
        SignerSettings {
            backend: SignerBackend::Local,
            path: "claimex-key.pem".into(),
            alg: SigningAlg::Rs256,
            published_paths: Vec::new(),
            kms_key_id: None,
            kms_published_key_ids: Vec::new(),
            kms_keys_parameter: None,
        }
    }
}

impl SignerSettings {
    /// Checks the combination of keys, naming the missing one.
    pub fn validate(&self) -> Result<(), SettingError> {
        let blank = |v: &Option<String>| v.as_deref().unwrap_or("").is_empty();
        if self.backend == SignerBackend::Kms
            && blank(&self.kms_key_id)
            && blank(&self.kms_keys_parameter)
        {
            return Err(SettingError::new(
                "kms_key_id",
                "is required with signer.backend = \"kms\" (or set signer.kms_keys_parameter)",
            ));
        }
        Ok(())
    }
}
