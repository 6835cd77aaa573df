//! The HTTP face of claimex (actix-web), thin over the core: one file per endpoint.
//!
//! - [`exchange`]: `POST /exchange[?issuerId=ID]`, an id-token in, a claimex JWT out;
//! - [`credentials`]: `POST /credentials`, an id-token in, AWS credentials out (the exchange,
//!   then an unsigned `AssumeRoleWithWebIdentity` with the token just minted);
//! - [`token`]: `POST /token`, the same exchange as RFC 8693 token exchange (form in, JSON out),
//!   and AWS credentials through `credentials`' code path for claimex's
//!   `requested_token_type` URN;
//! - [`provider`]: `GET /.well-known/openid-configuration` and `GET /.well-known/jwks.json`,
//!   claimex as an OIDC provider, for IAM;
//! - [`health`]: `GET /healthz`, readiness with the registry's and the signer's state;
//! - [`metrics`]: `GET /metrics`, on its own listener (`metrics_listen`), not on this one;
//! - [`close`]: no request runs behind a response that closes its connection (pipelining).
//!
//! This file holds what they share: the state, the `[http]` settings, the routes, the RFC 6749
//! error response and its status per refusal, the capped and timed body reader, and media
//! types. Bodies are read with a hard cap and a deadline before anything parses them (a
//! `Content-Length` above the cap is refused unread, and both refusals close the
//! connection), and tokens are never echoed or logged.

pub mod close;
mod credentials;
mod exchange;
mod health;
pub mod metrics;
mod provider;
mod token;

pub use credentials::{credentials_body, credentials_query};
pub use exchange::{issuer_id_from_query, token_from_body};
pub use token::{
    AWS_CREDENTIALS_TOKEN_TYPE, ID_TOKEN_TYPE, JWT_TOKEN_TYPE, SUBJECT_TOKEN_TYPES,
    TOKEN_EXCHANGE_GRANT, TokenRequest, parse_token_request,
};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};

pub use provider::discovery_document;

use crate::credentials::RoleAssumer;
use crate::error::{ExchangeError, ReasonCode, Refusal};
use crate::exchange::Exchanger;
use crate::metrics::Recorder;
use crate::settings::{SettingError, range};

/// What the handlers share.
pub struct AppState {
    /// The pipeline.
    pub exchanger: Arc<Exchanger>,
    /// Largest inbound token, bytes (`verify.max_token_bytes`): the body caps follow it.
    pub max_token_bytes: usize,
    /// Where each exchange is reported (metrics).
    pub recorder: Arc<dyn Recorder>,
    /// How long a request body may take to arrive.
    pub body_timeout: Duration,
    /// What the HTTP layer counts.
    pub counters: Arc<HttpCounters>,
    /// `sts:AssumeRoleWithWebIdentity`, for `POST /credentials`.
    pub assumer: Arc<dyn RoleAssumer>,
}

/// How the HTTP server treats clients: the `[http]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// How long a client may take to send a request's headers, seconds (then `408` and the
    /// connection is closed).
    pub header_timeout_secs: u64,
    /// How long a client may take to send a request's body once its headers are in, seconds
    /// (then `408` and the connection is closed).
    pub body_timeout_secs: u64,
}

impl Default for HttpSettings {
    fn default() -> HttpSettings {
        HttpSettings {
            header_timeout_secs: 10,
            body_timeout_secs: 10,
        }
    }
}

impl HttpSettings {
    /// Checks the ranges, naming the key.
    pub fn validate(&self) -> Result<(), SettingError> {
        range("header_timeout_secs", self.header_timeout_secs, 1, 300)?;
        range("body_timeout_secs", self.body_timeout_secs, 1, 300)
    }
}

/// What the HTTP layer counts about clients that misbehave, for the log and tests. On the
/// metrics listener the same refusals are counted in `claimex_exchanges_total` by reason
/// (`request_timeout`, `token_too_large`).
#[derive(Debug, Default)]
pub struct HttpCounters {
    /// Request bodies that did not arrive within `http.body_timeout_secs`.
    pub body_timeouts: AtomicU64,
    /// Request bodies refused for their size, announced (`Content-Length`) or read.
    pub bodies_too_large: AtomicU64,
    /// Requests pipelined behind a response that closed their connection, not served.
    pub refused_after_close: AtomicU64,
}

/// The status of each refusal.
pub fn status(refusal: Refusal) -> StatusCode {
    match refusal {
        Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Refusal::TimedOut => StatusCode::REQUEST_TIMEOUT,
        Refusal::Malformed
        | Refusal::UnknownIssuer
        | Refusal::UnsupportedGrant
        | Refusal::InvalidTarget => StatusCode::BAD_REQUEST,
        Refusal::Unverified => StatusCode::UNAUTHORIZED,
        Refusal::Denied => StatusCode::FORBIDDEN,
        Refusal::MapperFailed | Refusal::InvalidOutput | Refusal::Internal => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Refusal::Upstream => StatusCode::BAD_GATEWAY,
    }
}

/// `Retry-After` when the refusing part did not say: a short wait.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason_code: Option<&'a str>,
}

/// The RFC 6749 error response for `error`. A refusal that leaves the request body unread
/// (too large, too slow) closes the connection: what follows on it cannot be trusted to be
/// the next request.
pub fn error_response(error: &ExchangeError) -> HttpResponse {
    let mut response = HttpResponse::build(status(error.refusal));
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    if error.refusal == Refusal::Unavailable {
        // Whole seconds, rounded up, at least one: a retry before then fails the same way.
        let wait = error.retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response.insert_header((header::RETRY_AFTER, secs.max(1).to_string()));
    }
    if matches!(error.refusal, Refusal::TooLarge | Refusal::TimedOut) {
        response.force_close();
    }
    response.json(ErrorBody {
        error: error.code().as_str(),
        error_description: &error.description,
        reason_code: Some(error.reason_code()),
    })
}

/// The endpoints, relative to where they are mounted.
const ENDPOINTS: [&str; 6] = [
    "/exchange",
    "/credentials",
    "/.well-known/openid-configuration",
    "/.well-known/jwks.json",
    "/healthz",
    "/token",
];

/// Registers the routes at the root and, when `public_url` has a path (`/tenant`), under it
/// too: IAM reads `<public_url>/.well-known/openid-configuration` and the discovery document
/// names `<public_url>/.well-known/jwks.json`, while a proxy in front may or may not strip the
/// path.
pub fn routes(path_prefix: &str) -> impl Fn(&mut web::ServiceConfig) + Clone + use<> {
    let prefix = path_prefix.trim_end_matches('/').to_owned();
    move |cfg: &mut web::ServiceConfig| {
        if !prefix.is_empty() {
            cfg.service(web::scope(&prefix).configure(endpoints));
        }
        endpoints(cfg);
        cfg.default_service(web::to(not_found));
    }
}

fn endpoints(cfg: &mut web::ServiceConfig) {
    cfg.route(ENDPOINTS[0], web::post().to(exchange::exchange))
        .route(ENDPOINTS[1], web::post().to(credentials::credentials))
        .route(ENDPOINTS[2], web::get().to(provider::discovery))
        .route(ENDPOINTS[3], web::get().to(provider::jwks))
        .route(ENDPOINTS[4], web::get().to(health::healthz))
        .route(ENDPOINTS[5], web::post().to(token::token));
}

async fn not_found(request: HttpRequest) -> HttpResponse {
    let known = ENDPOINTS.iter().any(|e| request.path().ends_with(e));
    let text = if known {
        format!("method {} is not allowed here", request.method())
    } else {
        "no such endpoint; claimex serves POST /exchange and POST /token".to_owned()
    };
    let status = if known {
        StatusCode::METHOD_NOT_ALLOWED
    } else {
        StatusCode::NOT_FOUND
    };
    HttpResponse::build(status).json(ErrorBody {
        error: "invalid_request",
        error_description: &text,
        reason_code: None,
    })
}

/// Reads the body, refusing it before reading when its `Content-Length` passes `limit`
/// bytes, as soon as it passes `limit` while reading, and when it has not arrived within
/// `deadline`. `shown_limit` is the limit the refusal names (the documented one). Either
/// refusal closes the connection ([`error_response`]) and is counted in `counters`.
pub(crate) async fn read_capped(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    shown_limit: &str,
    deadline: Duration,
    counters: &HttpCounters,
) -> Result<Vec<u8>, ExchangeError> {
    let too_large = || {
        counters.bodies_too_large.fetch_add(1, Ordering::Relaxed);
        ExchangeError::coded(
            ReasonCode::TokenTooLarge,
            format!("the request body is larger than {shown_limit}"),
        )
    };
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let read = async {
        let mut body = Vec::with_capacity(announced.map_or(0, |n| n as usize));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| {
                ExchangeError::coded(
                    ReasonCode::MalformedRequest,
                    format!("the request body could not be read: {e}"),
                )
            })?;
            if body.len() + chunk.len() > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    match tokio::time::timeout(deadline, read).await {
        Ok(result) => result,
        Err(_) => {
            counters.body_timeouts.fetch_add(1, Ordering::Relaxed);
            Err(ExchangeError::coded(
                ReasonCode::RequestTimeout,
                format!(
                    "the request body did not arrive within {} s",
                    deadline.as_secs()
                ),
            ))
        }
    }
}

/// The media type named by a `Content-Type` value (RFC 9110 §8.3.1: type and subtype are
/// case-insensitive, parameters follow), when it is JSON: `application/json` or any
/// `application/*+json` (RFC 6839).
pub fn names_json(media_type: &str) -> bool {
    parse_media_type(media_type).is_some_and(|m| is_json(&m))
}

fn is_json(m: &mime::Mime) -> bool {
    m.type_() == mime::APPLICATION
        && match m.suffix() {
            None => m.subtype() == mime::JSON,
            Some(suffix) => suffix == mime::JSON,
        }
}

/// Parses a media type with the `mime` crate, after dropping the optional whitespace RFC
/// 9110 allows around the `;` before each parameter (which `mime` does not take).
fn parse_media_type(text: &str) -> Option<mime::Mime> {
    let mut parts = text.split(';').map(str::trim);
    let mut normalized = parts.next()?.to_owned();
    for parameter in parts.filter(|p| !p.is_empty()) {
        normalized.push(';');
        normalized.push_str(parameter);
    }
    normalized.parse().ok()
}

/// Whether an `Accept` value (a list of media ranges, RFC 9110 §12.5.1) asks for JSON: one of
/// its ranges is JSON and not refused with `q=0`.
pub fn accepts_json(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let Some(m) = parse_media_type(range) else {
            return false;
        };
        let refused = m
            .get_param("q")
            .is_some_and(|q| q.as_str().parse::<f32>().is_ok_and(|q| q <= 0.0));
        !refused && is_json(&m)
    })
}

/// The value of `header_name` as text, when present and visible ASCII.
pub(crate) fn header_text(request: &HttpRequest, header_name: header::HeaderName) -> Option<&str> {
    request.headers().get(header_name)?.to_str().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_are_case_insensitive_with_parameters_and_suffixes() {
        for json in [
            "application/json",
            "Application/JSON",
            "APPLICATION/json; charset=UTF-8",
            " application/json ; charset=utf-8",
            "application/vnd.claimex+json",
            "Application/Problem+JSON; q=1",
            "application/json ; charset=utf-8",
        ] {
            assert!(names_json(json), "{json}");
            assert!(accepts_json(json), "{json}");
        }
        for other in [
            "",
            "application/jsonx",
            "application/jwt",
            "text/json",
            "text/plain",
            "application/json+zip",
            "json",
            "application",
            "*/*",
        ] {
            assert!(!names_json(other), "{other}");
        }
        assert!(accepts_json("text/html, application/json;q=0.5"));
        assert!(!accepts_json("application/json;q=0"));
        assert!(!accepts_json("*/*"));
        assert!(!accepts_json("application/jwt, text/plain"));
    }
}
