//! The typed refusal every exchange ends in when it does not end in a token.
//!
//! An [`ExchangeError`] carries a [`Refusal`] (what kind of failure, which decides the RFC 6749
//! error code and, in the HTTP adapter, the status) and a description written for the caller:
//! it says what was wrong and, where it helps, what to do. Descriptions never contain the
//! token or key material.

use std::fmt;

/// The RFC 6749 §5.2 error codes claimex answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed: no token, not a JWT, too large, unknown issuer id.
    InvalidRequest,
    /// The token failed verification.
    InvalidGrant,
    /// The issuer's mapper refused the exchange.
    AccessDenied,
    /// claimex or the mapper failed.
    ServerError,
    /// A dependency (issuer keys, signing key) is unavailable for now.
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The code as it appears in the `error` member.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::ServerError => "server_error",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// What kind of failure ended the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The body is larger than the configured maximum token size.
    TooLarge,
    /// The request is malformed (empty body, not a compact JWS, bad JSON, bad parameter).
    Malformed,
    /// No registered issuer matches the request.
    UnknownIssuer,
    /// The token's signature, algorithm or claims do not verify.
    Unverified,
    /// The mapper denied the exchange.
    Denied,
    /// The mapper trapped, ran out of time or memory, or is not usable.
    MapperFailed,
    /// The mapper's output cannot be signed (reserved claims, bad tags, bad audience...).
    InvalidOutput,
    /// The issuer's keys or the signing key cannot be reached now.
    Unavailable,
    /// An internal error.
    Internal,
}

impl Refusal {
    /// The RFC 6749 error code for this refusal.
    pub fn code(self) -> ErrorCode {
        match self {
            Refusal::TooLarge | Refusal::Malformed | Refusal::UnknownIssuer => {
                ErrorCode::InvalidRequest
            }
            Refusal::Unverified => ErrorCode::InvalidGrant,
            Refusal::Denied => ErrorCode::AccessDenied,
            Refusal::MapperFailed | Refusal::InvalidOutput | Refusal::Internal => {
                ErrorCode::ServerError
            }
            Refusal::Unavailable => ErrorCode::TemporarilyUnavailable,
        }
    }

    /// A short stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::TooLarge => "too_large",
            Refusal::Malformed => "malformed",
            Refusal::UnknownIssuer => "unknown_issuer",
            Refusal::Unverified => "unverified",
            Refusal::Denied => "denied",
            Refusal::MapperFailed => "mapper_failed",
            Refusal::InvalidOutput => "invalid_output",
            Refusal::Unavailable => "unavailable",
            Refusal::Internal => "internal",
        }
    }
}

/// Why an exchange produced no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeError {
    /// The kind of failure.
    pub refusal: Refusal,
    /// What went wrong, for the caller. Never contains the token.
    pub description: String,
}

impl ExchangeError {
    /// A new error of kind `refusal`.
    pub fn new(refusal: Refusal, description: impl Into<String>) -> ExchangeError {
        ExchangeError {
            refusal,
            description: description.into(),
        }
    }

    /// The RFC 6749 error code.
    pub fn code(&self) -> ErrorCode {
        self.refusal.code()
    }
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code().as_str(), self.description)
    }
}

impl std::error::Error for ExchangeError {}
