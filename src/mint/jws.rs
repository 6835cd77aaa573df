//! The outbound JWS: the host-owned claims of one token ([`Stamp`]), the signing input built
//! from the checked claims and the signing key's `alg` and `kid`, and the assembled token,
//! bounded by the length AWS STS accepts.

use std::time::Duration;

use base64_simd::URL_SAFE_NO_PAD;

use super::{CheckedClaims, MAX_TOKEN_CHARS};
use crate::error::{ExchangeError, Refusal};
use crate::signer::SigningAlg;

fn invalid(description: impl Into<String>) -> ExchangeError {
    ExchangeError::new(Refusal::InvalidOutput, description)
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
    /// Stamps a token issued by `iss` at `now`, valid for `lifetime`, with id `jti` (which
    /// must need no JSON escaping: the system source gives base64url).
    pub fn new(iss: &str, now: u64, lifetime: Duration, jti: String) -> Stamp {
        Stamp {
            iss: iss.to_owned(),
            iat: now,
            exp: now + lifetime.as_secs(),
            jti,
        }
    }
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
    URL_SAFE_NO_PAD.encode_append(&header, &mut out);
    out.push('.');
    URL_SAFE_NO_PAD.encode_append(&payload, &mut out);
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
    URL_SAFE_NO_PAD.encode_append(signature, &mut signing_input);
    if signing_input.len() > MAX_TOKEN_CHARS {
        return Err(invalid(format!(
            "the outbound token exceeds the {MAX_TOKEN_CHARS} characters AWS STS accepts"
        )));
    }
    Ok(signing_input)
}
