//! The HTTP face of claimex (actix-web), thin over the core.
//!
//! - `POST /exchange[?issuerId=ID]`: the raw token as body (any content type but JSON, so
//!   `curl --data-binary` works as is), or `{"token": "..."}` as `application/json`. Answers
//!   `application/jwt`, or `{"token", "expires_at"}` for `Accept: application/json`.
//! - `GET /.well-known/openid-configuration` and `GET /.well-known/jwks.json`: claimex as an
//!   OIDC provider, for IAM.
//! - `GET /healthz`: readiness, with the issuer registry's status.
//!
//! Every failure is an RFC 6749 JSON error with its status; bodies are read with a hard cap
//! before anything parses them, and tokens are never echoed or logged.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;
use serde::Serialize;

use crate::audit::Audit;
use crate::error::{ExchangeError, Refusal};
use crate::exchange::Exchanger;

/// Slack allowed above the token size for a JSON request body.
const JSON_OVERHEAD: usize = 1024;

/// What the handlers share.
pub struct AppState {
    /// The pipeline.
    pub exchanger: Arc<Exchanger>,
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
    })
}

/// Registers the routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/exchange", web::post().to(exchange))
        .route(
            "/.well-known/openid-configuration",
            web::get().to(discovery),
        )
        .route("/.well-known/jwks.json", web::get().to(jwks))
        .route("/healthz", web::get().to(healthz))
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
    })
}

fn refuse(refusal: Refusal, description: impl Into<String>) -> HttpResponse {
    let error = ExchangeError::new(refusal, description);
    Audit::default().emit(Err(&error));
    error_response(&error)
}

/// Reads the body, refusing it as soon as it passes `limit` bytes.
async fn read_capped(mut payload: web::Payload, limit: usize) -> Result<Vec<u8>, ExchangeError> {
    let mut body = Vec::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ExchangeError::new(
                Refusal::Malformed,
                format!("the request body could not be read: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ExchangeError::new(
                Refusal::TooLarge,
                format!("the request body is larger than {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn issuer_id(request: &HttpRequest) -> Result<Option<String>, ExchangeError> {
    let mut found = None;
    for (key, value) in url::form_urlencoded::parse(request.query_string().as_bytes()) {
        match key.as_ref() {
            "issuerId" if found.is_none() => found = Some(value.into_owned()),
            "issuerId" => {
                return Err(ExchangeError::new(
                    Refusal::Malformed,
                    "issuerId is given more than once",
                ));
            }
            "token" | "id_token" => {
                return Err(ExchangeError::new(
                    Refusal::Malformed,
                    "never put a token in the URL: send it as the request body",
                ));
            }
            _ => {}
        }
    }
    Ok(found)
}

fn is_json(request: &HttpRequest, header_name: header::HeaderName) -> bool {
    request
        .headers()
        .get(header_name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|part| part.trim().starts_with("application/json"))
        })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRequest {
    token: String,
}

async fn exchange(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let max_token = state.exchanger.settings().verify.max_token_bytes;
    let issuer_id = match issuer_id(&request) {
        Ok(id) => id,
        Err(e) => return refuse(e.refusal, e.description),
    };
    let json_body = is_json(&request, header::CONTENT_TYPE);
    let body = match read_capped(
        payload,
        max_token + if json_body { JSON_OVERHEAD } else { 2 },
    )
    .await
    {
        Ok(body) => body,
        Err(e) => return refuse(e.refusal, e.description),
    };
    let token = if json_body {
        match serde_json::from_slice::<JsonRequest>(&body) {
            Ok(r) => r.token,
            Err(_) => {
                return refuse(
                    Refusal::Malformed,
                    "the JSON body must be {\"token\": \"<JWT>\"}",
                );
            }
        }
    } else {
        match String::from_utf8(body) {
            Ok(text) => text,
            Err(_) => return refuse(Refusal::Malformed, "the body is not a JWT (not UTF-8 text)"),
        }
    };
    let (result, audit) = state
        .exchanger
        .exchange(token.trim(), issuer_id.as_deref())
        .await;
    audit.emit(result.as_ref());
    match result {
        Ok(minted) => {
            if is_json(&request, header::ACCEPT) {
                HttpResponse::Ok()
                    .insert_header((header::CACHE_CONTROL, "no-store"))
                    .json(
                        serde_json::json!({"token": minted.token, "expires_at": minted.expires_at}),
                    )
            } else {
                HttpResponse::Ok()
                    .insert_header((header::CACHE_CONTROL, "no-store"))
                    .content_type("application/jwt")
                    .body(minted.token)
            }
        }
        Err(e) => error_response(&e),
    }
}

/// claimex's OpenID Provider metadata.
pub fn discovery_document(exchanger: &Exchanger) -> serde_json::Value {
    let url = &exchanger.settings().issuer_url;
    let mut algs: Vec<&str> = exchanger
        .signer()
        .published()
        .iter()
        .map(|k| k.alg().as_str())
        .collect();
    algs.sort_unstable();
    algs.dedup();
    serde_json::json!({
        "issuer": url,
        "jwks_uri": format!("{url}/.well-known/jwks.json"),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", claimex_tags::TAGS_CLAIM],
    })
}

fn cacheable(body: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        ))
        .json(body)
}

async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    cacheable(discovery_document(&state.exchanger))
}

async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    cacheable(serde_json::json!({"keys": state.exchanger.signer().published()}))
}

async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let registry = state.exchanger.registry().status();
    let signing = state.exchanger.signer().signing_key().is_ok();
    let ready = registry.last_success_unix.is_some() && signing;
    let status = match (ready, registry.last_error.is_some()) {
        (false, _) => "unavailable",
        (true, true) => "degraded",
        (true, false) => "ok",
    };
    HttpResponse::build(if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    })
    .insert_header((header::CACHE_CONTROL, "no-store"))
    .json(serde_json::json!({"status": status, "registry": registry, "signing_key": signing}))
}
