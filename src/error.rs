//! The typed refusal every exchange ends in when it does not end in a token.
//!
//! An [`ExchangeError`] carries a [`Refusal`] (what kind of failure, which decides the RFC 6749
//! error code and, in the HTTP adapter, the status), a stable machine-readable [`Reason`] code
//! (claimex's own [`ReasonCode`], or the mapper's deny code) and a description written for the
//! caller: it says what was wrong and, where it helps, what to do. Descriptions never contain
//! the token or key material.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

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
    /// `POST /token`: the grant type is not token exchange (RFC 6749 §5.2).
    UnsupportedGrantType,
    /// `POST /token`: the requested audience cannot be served (RFC 8693 §2.2.2).
    InvalidTarget,
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
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::InvalidTarget => "invalid_target",
        }
    }
}

/// What kind of failure ended the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The body is larger than the configured maximum token size.
    TooLarge,
    /// The request body did not arrive within the body-read deadline.
    TimedOut,
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
    /// An upstream service (AWS STS) refused what claimex sent it: a configuration to fix
    /// on that side (the IAM OIDC provider, the role), not the caller's request.
    Upstream,
    /// An internal error.
    Internal,
    /// `POST /token`: a grant type other than token exchange.
    UnsupportedGrant,
    /// `POST /token`: an audience (or resource) the entry or its mapper does not allow.
    InvalidTarget,
}

impl Refusal {
    /// The RFC 6749 error code for this refusal.
    pub fn code(self) -> ErrorCode {
        match self {
            Refusal::TooLarge | Refusal::TimedOut | Refusal::Malformed | Refusal::UnknownIssuer => {
                ErrorCode::InvalidRequest
            }
            Refusal::Unverified => ErrorCode::InvalidGrant,
            Refusal::Denied => ErrorCode::AccessDenied,
            Refusal::MapperFailed
            | Refusal::InvalidOutput
            | Refusal::Upstream
            | Refusal::Internal => ErrorCode::ServerError,
            Refusal::Unavailable => ErrorCode::TemporarilyUnavailable,
            Refusal::UnsupportedGrant => ErrorCode::UnsupportedGrantType,
            Refusal::InvalidTarget => ErrorCode::InvalidTarget,
        }
    }

    /// A short stable name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::TooLarge => "too_large",
            Refusal::TimedOut => "timed_out",
            Refusal::Malformed => "malformed",
            Refusal::UnknownIssuer => "unknown_issuer",
            Refusal::Unverified => "unverified",
            Refusal::Denied => "denied",
            Refusal::MapperFailed => "mapper_failed",
            Refusal::InvalidOutput => "invalid_output",
            Refusal::Unavailable => "unavailable",
            Refusal::Upstream => "upstream",
            Refusal::Internal => "internal",
            Refusal::UnsupportedGrant => "unsupported_grant",
            Refusal::InvalidTarget => "invalid_target",
        }
    }
}

macro_rules! reason_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $text:literal => $refusal:ident,)*) => {
        /// claimex's own reason codes: stable, machine-readable, one [`Refusal`] each. The
        /// `/exchange` refusal body carries one as `reason_code` (a mapper's denial carries the
        /// mapper's deny code instead); README.md lists them all.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ReasonCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ReasonCode {
            /// Every code, in documentation order.
            pub const ALL: &'static [ReasonCode] = &[$(ReasonCode::$variant,)*];

            /// The code as it appears in `reason_code`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ReasonCode::$variant => $text,)*
                }
            }

            /// The kind of refusal this code is.
            pub fn refusal(self) -> Refusal {
                match self {
                    $(ReasonCode::$variant => Refusal::$refusal,)*
                }
            }
        }
    };
}

reason_codes! {
    /// The body is larger than `verify.max_token_bytes`.
    TokenTooLarge = "token_too_large" => TooLarge,
    /// The request's headers or body did not arrive in time (`[http]` timeouts).
    RequestTimeout = "request_timeout" => TimedOut,
    /// The body is empty.
    TokenMissing = "token_missing" => Malformed,
    /// The body is not a compact JWS (or not UTF-8, or its header or payload do not decode).
    NotAJwt = "not_a_jwt" => Malformed,
    /// The request is malformed otherwise (bad JSON body, unreadable body).
    MalformedRequest = "malformed_request" => Malformed,
    /// A query parameter is wrong (`issuerId` given twice).
    InvalidParameter = "invalid_parameter" => Malformed,
    /// A token was put in the URL.
    TokenInUrl = "token_in_url" => Malformed,
    /// claimex does not accept this kind of credential.
    UnsupportedSubjectKind = "unsupported_subject_kind" => Malformed,
    /// `POST /token`: a required parameter is missing.
    MissingParameter = "missing_parameter" => Malformed,
    /// `POST /token`: the body is not `application/x-www-form-urlencoded`.
    NotAForm = "not_a_form" => Malformed,
    /// `POST /token`: `grant_type` is not `urn:ietf:params:oauth:grant-type:token-exchange`.
    UnsupportedGrantType = "unsupported_grant_type" => UnsupportedGrant,
    /// `POST /token`: `subject_token_type` is not one claimex reads.
    UnsupportedTokenType = "unsupported_token_type" => Malformed,
    /// `POST /token`: `requested_token_type` is not `urn:ietf:params:oauth:token-type:jwt`.
    UnsupportedRequestedTokenType = "unsupported_requested_token_type" => Malformed,
    /// `POST /token`: `actor_token` (delegation) is not supported.
    ActorTokenUnsupported = "actor_token_unsupported" => Malformed,
    /// `POST /token`: the `audience` is not among the entry's `output_audiences` or the
    /// mapper's `aud`; or several audiences, or a `resource`, were asked for.
    AudienceNotAllowed = "audience_not_allowed" => InvalidTarget,
    /// No issuer is registered with the `issuerId` given.
    UnknownIssuer = "unknown_issuer" => UnknownIssuer,
    /// Several issuers share the token's `iss`: name one with `issuerId`.
    AmbiguousIssuer = "ambiguous_issuer" => UnknownIssuer,
    /// The issuer named accepts another kind of credential.
    IssuerKindMismatch = "issuer_kind_mismatch" => UnknownIssuer,
    /// No issuer is registered for the token's `iss`.
    UnregisteredIssuer = "unregistered_issuer" => Unverified,
    /// The token does not verify (a generic code; the specific ones follow).
    InvalidToken = "invalid_token" => Unverified,
    /// The token's algorithm is never accepted, or not by this issuer entry (`algorithms`).
    AlgorithmNotAllowed = "algorithm_not_allowed" => Unverified,
    /// The token's header lists critical extensions (`crit`).
    UnsupportedCritHeader = "unsupported_crit_header" => Unverified,
    /// The token's `kid` is not among the issuer's keys.
    UnknownKid = "unknown_kid" => Unverified,
    /// No key of the issuer fits the token's `kid` and `alg`.
    NoMatchingKey = "no_matching_key" => Unverified,
    /// The signature does not verify.
    BadSignature = "bad_signature" => Unverified,
    /// The payload is not a JSON object.
    MalformedClaims = "malformed_claims" => Unverified,
    /// A registered claim is given twice.
    DuplicateClaim = "duplicate_claim" => Unverified,
    /// A required claim (`iss`, `aud`, `exp`, `iat`) is missing.
    MissingClaim = "missing_claim" => Unverified,
    /// A registered claim has the wrong type.
    MalformedClaim = "malformed_claim" => Unverified,
    /// `exp` has passed (beyond the leeway).
    TokenExpired = "token_expired" => Unverified,
    /// `nbf` lies in the future.
    TokenNotYetValid = "token_not_yet_valid" => Unverified,
    /// `iat` lies in the future.
    TokenIssuedInFuture = "token_issued_in_future" => Unverified,
    /// The token is older than `verify.max_token_age_secs`.
    TokenTooOld = "token_too_old" => Unverified,
    /// `iss` is not the issuer entry's `issuer`.
    IssuerMismatch = "issuer_mismatch" => Unverified,
    /// `aud` names none of the issuer entry's `audiences`.
    AudienceMismatch = "audience_mismatch" => Unverified,
    /// The signed AWS request (subject token) does not decode: not base64url JSON of the
    /// documented shape, a header too long or given twice.
    AwsRequestMalformed = "aws_request_malformed" => Malformed,
    /// The signed AWS request is for an endpoint off the entry's `sts_endpoints`, or its
    /// `Host` header differs from its URL.
    StsEndpointNotAllowed = "sts_endpoint_not_allowed" => Unverified,
    /// The signed AWS request is not `POST /` with body `Action=GetCallerIdentity&Version=2011-06-15`.
    NotGetCallerIdentity = "not_get_caller_identity" => Unverified,
    /// The `Authorization` header or `x-amz-date` is not SigV4 as claimex reads it.
    AwsSignatureMalformed = "aws_signature_malformed" => Unverified,
    /// `host`, `x-amz-date` or `x-claimex-server-id` is not signed (or a signed header is absent).
    UnsignedRequiredHeader = "unsigned_required_header" => Unverified,
    /// The signed `x-claimex-server-id` is not this claimex's server id.
    ServerIdMismatch = "server_id_mismatch" => Unverified,
    /// `x-amz-date` is more than 15 minutes from claimex's clock.
    AwsRequestExpired = "aws_request_expired" => Unverified,
    /// This signed AWS request was already redeemed.
    AwsRequestReplayed = "aws_request_replayed" => Unverified,
    /// STS refused the caller's signed GetCallerIdentity (its error code is in the
    /// description).
    AwsIdentityRefused = "aws_identity_refused" => Unverified,
    /// STS confirmed an identity of an account the entry does not accept.
    AwsAccountNotAllowed = "aws_account_not_allowed" => Unverified,
    /// The mapper denied without a usable code (never sent: a denial carries the mapper's).
    AccessDenied = "access_denied" => Denied,
    /// The mapper failed: an error, a trap, its deadline, its memory cap, its output cap.
    MapperFailed = "mapper_failed" => MapperFailed,
    /// The mapper's output cannot be signed (reserved claims, tags, audience, `sub`).
    InvalidMapperOutput = "invalid_mapper_output" => InvalidOutput,
    /// The issuer's keys cannot be fetched now.
    IssuerKeysUnavailable = "issuer_keys_unavailable" => Unavailable,
    /// The signing key cannot be used now (KMS unreachable, throttled, disabled).
    SigningUnavailable = "signing_unavailable" => Unavailable,
    /// `POST /credentials`: no `role_arn` given and the issuer entry has no `default_role_arn`.
    RoleArnMissing = "role_arn_missing" => Malformed,
    /// `POST /credentials`: `duration_seconds` is outside 900 and the entry's
    /// `max_duration_seconds`.
    DurationOutOfRange = "duration_out_of_range" => Malformed,
    /// `POST /credentials`: the role matches none of the entry's `allowed_roles` (refused
    /// before STS is called).
    RoleNotAllowed = "role_not_allowed" => Denied,
    /// STS answered `AccessDenied`: the role's trust policy does not admit the token.
    StsAccessDenied = "sts_access_denied" => Denied,
    /// STS answered `IDPRejectedClaim`.
    StsRejectedClaim = "sts_rejected_claim" => Denied,
    /// STS answered `InvalidIdentityToken`: the IAM OIDC provider does not accept claimex's
    /// token (missing provider, wrong URL, client id or keys).
    StsInvalidIdentityToken = "sts_invalid_identity_token" => Upstream,
    /// STS answered `ExpiredToken` for a token claimex just minted (clock skew).
    StsExpiredToken = "sts_expired_token" => Upstream,
    /// STS refused the call otherwise (`ValidationError`, `PackedPolicyTooLarge`...).
    StsRefused = "sts_refused" => Upstream,
    /// STS throttled the call.
    StsThrottled = "sts_throttled" => Unavailable,
    /// STS cannot be reached, timed out, or failed.
    StsUnavailable = "sts_unavailable" => Unavailable,
    /// STS cannot be reached now.
    AwsStsUnavailable = "aws_sts_unavailable" => Unavailable,
    /// The shared one-use store (`[aws_iam] replay_table`, DynamoDB) cannot record a signed
    /// AWS request now (unreachable, throttled, missing, denied): refused, never accepted.
    ReplayStoreUnavailable = "replay_store_unavailable" => Unavailable,
    /// claimex failed.
    InternalError = "internal_error" => Internal,
}

impl Refusal {
    /// The reason code of a refusal made without a more specific one.
    pub fn default_reason(self) -> ReasonCode {
        match self {
            Refusal::TooLarge => ReasonCode::TokenTooLarge,
            Refusal::TimedOut => ReasonCode::RequestTimeout,
            Refusal::Malformed => ReasonCode::MalformedRequest,
            Refusal::UnknownIssuer => ReasonCode::UnknownIssuer,
            Refusal::Unverified => ReasonCode::InvalidToken,
            Refusal::Denied => ReasonCode::AccessDenied,
            Refusal::MapperFailed => ReasonCode::MapperFailed,
            Refusal::InvalidOutput => ReasonCode::InvalidMapperOutput,
            Refusal::Unavailable => ReasonCode::SigningUnavailable,
            Refusal::Upstream => ReasonCode::StsRefused,
            Refusal::Internal => ReasonCode::InternalError,
            Refusal::UnsupportedGrant => ReasonCode::UnsupportedGrantType,
            Refusal::InvalidTarget => ReasonCode::AudienceNotAllowed,
        }
    }
}

/// The machine-readable reason of a refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// One of claimex's own.
    Claimex(ReasonCode),
    /// The mapper's deny code (1 to 64 of `[a-z0-9_]`, checked by the host).
    Mapper(Cow<'static, str>),
}

impl Reason {
    /// The code as it appears in `reason_code`.
    pub fn as_str(&self) -> &str {
        match self {
            Reason::Claimex(code) => code.as_str(),
            Reason::Mapper(code) => code,
        }
    }
}

/// Why an exchange produced no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeError {
    /// The kind of failure.
    pub refusal: Refusal,
    /// The stable machine-readable reason.
    pub reason: Reason,
    /// What went wrong, for the caller. Never contains the token.
    pub description: String,
    /// For [`Refusal::Unavailable`]: how long until a retry can succeed (the HTTP layer's
    /// `Retry-After`), when the refusing part knows it.
    pub retry_after: Option<Duration>,
}

impl ExchangeError {
    /// A new error of kind `refusal`, with that kind's default reason code (prefer
    /// [`ExchangeError::coded`] where a more specific code exists).
    pub fn new(refusal: Refusal, description: impl Into<String>) -> ExchangeError {
        ExchangeError {
            refusal,
            reason: Reason::Claimex(refusal.default_reason()),
            description: description.into(),
            retry_after: None,
        }
    }

    /// A new error with reason code `code` (and its kind of refusal).
    pub fn coded(code: ReasonCode, description: impl Into<String>) -> ExchangeError {
        ExchangeError {
            refusal: code.refusal(),
            reason: Reason::Claimex(code),
            description: description.into(),
            retry_after: None,
        }
    }

    /// The mapper's denial: `access_denied`, with the mapper's deny code.
    pub fn denied(
        code: impl Into<Cow<'static, str>>,
        description: impl Into<String>,
    ) -> ExchangeError {
        ExchangeError {
            refusal: Refusal::Denied,
            reason: Reason::Mapper(code.into()),
            description: description.into(),
            retry_after: None,
        }
    }

    /// The same error, saying a retry can succeed after `wait`.
    pub fn retry_after(mut self, wait: Duration) -> ExchangeError {
        self.retry_after = Some(wait);
        self
    }

    /// The RFC 6749 error code.
    pub fn code(&self) -> ErrorCode {
        self.refusal.code()
    }

    /// The machine-readable reason code, as sent in `reason_code`.
    pub fn reason_code(&self) -> &str {
        self.reason.as_str()
    }
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code().as_str(), self.description)
    }
}

impl std::error::Error for ExchangeError {}

/// A caller-supplied value fit to quote in a description: escaped as Rust's `{:?}` would
/// (control characters cannot reach a log line or a terminal raw), in double quotes, and at
/// most `max_chars` characters *after* escaping, with `…` where it was cut. Cutting before
/// escaping is not enough: one control character escapes to up to ten.
pub fn shown(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(max_chars.min(text.len() * 2) + 4);
    out.push('"');
    let mut used = 0;
    for c in text.chars() {
        let escaped = c.escape_debug();
        let len = escaped.len();
        if used + len > max_chars {
            out.push('…');
            break;
        }
        used += len;
        out.extend(escaped);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_values_are_escaped_and_bounded_after_escaping() {
        assert_eq!(shown("plain", 16), "\"plain\"");
        assert_eq!(shown("a\"b", 16), "\"a\\\"b\"");
        assert_eq!(shown("abcdef", 3), "\"abc…\"");
        // 100 control characters would escape to 600; the bound holds after escaping.
        let hostile = "\u{15}".repeat(100);
        let out = shown(&hostile, 128);
        assert!(out.chars().count() <= 128 + 3, "{out}");
        assert!(out.ends_with("…\"") && !out.contains('\u{15}'));
    }

    #[test]
    fn reason_codes_are_unique_snake_case_and_documented() {
        let readme = include_str!("../README.md");
        let mut seen = std::collections::HashSet::new();
        for code in ReasonCode::ALL {
            let text = code.as_str();
            assert!(seen.insert(text), "{text} twice");
            assert!(crate::mapper::contract::valid_deny_code(text), "{text}");
            assert!(
                readme.contains(&format!("`{text}`")),
                "README.md does not list {text}"
            );
        }
        for refusal in [
            Refusal::TooLarge,
            Refusal::Malformed,
            Refusal::UnknownIssuer,
            Refusal::Unverified,
            Refusal::Denied,
            Refusal::MapperFailed,
            Refusal::InvalidOutput,
            Refusal::Unavailable,
            Refusal::Upstream,
            Refusal::Internal,
            Refusal::UnsupportedGrant,
            Refusal::InvalidTarget,
        ] {
            assert_eq!(refusal.default_reason().refusal(), refusal);
        }
        assert_eq!(
            ExchangeError::coded(ReasonCode::TokenExpired, "x").refusal,
            Refusal::Unverified
        );
        assert_eq!(
            ExchangeError::denied("owner_not_allowed", "x").reason_code(),
            "owner_not_allowed"
        );
    }
}
