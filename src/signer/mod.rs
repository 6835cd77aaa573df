//! Signing keys: the trait the core signs through, and the published key set.
//!
//! The core never sees key material. It asks a [`KeyStore`] for the key that signs now, builds
//! the JWS header from that key's `alg` and `kid`, and hands the signing input back to the
//! same key, so a rotation between the two steps cannot produce a header that names one key
//! and a signature made by another. Backends: a local key file ([`local`], the embedded
//! default) and AWS KMS (its own adapter).

pub mod jwk;
pub mod local;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

pub use jwk::PublicJwk;

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

/// Where the signing key and the published keys come from.
pub trait KeyStore: Send + Sync {
    /// The key that signs now.
    fn signing_key(&self) -> Result<Arc<dyn SigningKey>, SignError>;
    /// Every key verifiers should trust now: the signing key, and during a rotation the
    /// previous and pending ones.
    fn published(&self) -> Vec<PublicJwk>;
}
