//! The HTTP face of claimex (actix-web), thin over the core: one file per endpoint.
//!
//! - [`exchange`]: `POST /exchange[?issuerId=ID]`, an id-token in, a claimex JWT out;
//! - [`provider`]: `GET /.well-known/openid-configuration` and `GET /.well-known/jwks.json`,
//!   claimex as an OIDC provider, for IAM;
//! - [`health`]: `GET /healthz`, readiness with the registry's and the signer's state;
//! - [`metrics`]: `GET /metrics`, on its own listener (`metrics_listen`), not on this one.
//!
//! This file holds what they share: the state, the routes, the RFC 6749 error response and
//! its status per refusal, and the capped body reader. Bodies are read with a hard cap before
//! anything parses them, and tokens are never echoed or logged.

mod exchange;
mod health;
pub mod metrics;
mod provider;

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;
use serde::Serialize;

pub use provider::discovery_document;

use crate::error::{ExchangeError, ReasonCode, Refusal};
use crate::exchange::Exchanger;
use crate::metrics::Recorder;

/// What the handlers share.
pub struct AppState {
    /// The pipeline.
    pub exchanger: Arc<Exchanger>,
    /// Largest inbound token, bytes (`verify.max_token_bytes`): the body caps follow it.
    pub max_token_bytes: usize,
    /// Where each exchange is reported (metrics).
    pub recorder: Arc<dyn Recorder>,
}

/// The status of each refusal.
pub fn status(refusal: Refusal) -> StatusCode {
    match refusal {
        Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Refusal::Malformed | Refusal::UnknownIssuer => StatusCode::BAD_REQUEST,
        Refusal::Unverified => StatusCode::UNAUTHORIZED,
        Refusal::Denied => StatusCode::FORBIDDEN,
        Refusal::MapperFailed | Refusal::InvalidOutput | Refusal::Internal => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason_code: Option<&'a str>,
}

/// The RFC 6749 error response for `error`.
pub fn error_response(error: &ExchangeError) -> HttpResponse {
    let mut response = HttpResponse::build(status(error.refusal));
    response.insert_header((header::CACHE_CONTROL, "no-store"));
    if error.refusal == Refusal::Unavailable {
        response.insert_header((header::RETRY_AFTER, "5"));
    }
    response.json(ErrorBody {
        error: error.code().as_str(),
        error_description: &error.description,
        reason_code: Some(error.reason_code()),
    })
}

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/exchange", web::post().to(exchange::exchange))
        .route(
            "/.well-known/openid-configuration",
            web::get().to(provider::discovery),
        )
        .route("/.well-known/jwks.json", web::get().to(provider::jwks))
        .route("/healthz", web::get().to(health::healthz))
        .default_service(web::to(not_found));
}

async fn not_found(request: HttpRequest) -> HttpResponse {
    let known = [
        "/exchange",
        "/.well-known/openid-configuration",
        "/.well-known/jwks.json",
        "/healthz",
    ];
    let text = if known.contains(&request.path()) {
        format!("method {} is not allowed here", request.method())
    } else {
        "no such endpoint; claimex serves POST /exchange".to_owned()
    };
    let status = if known.contains(&request.path()) {
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

/// Reads the body, refusing it as soon as it passes `limit` bytes.
pub(crate) async fn read_capped(
    mut payload: web::Payload,
    limit: usize,
) -> Result<Vec<u8>, ExchangeError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ExchangeError::coded(
                ReasonCode::MalformedRequest,
                format!("the request body could not be read: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ExchangeError::coded(
                ReasonCode::TokenTooLarge,
                format!("the request body is larger than {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Whether the header `header_name` names JSON.
pub(crate) fn is_json(request: &HttpRequest, header_name: header::HeaderName) -> bool {
    request
        .headers()
        .get(header_name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|part| part.trim().starts_with("application/json"))
        })
}
