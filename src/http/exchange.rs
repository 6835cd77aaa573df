//! `POST /exchange[?issuerId=ID]`: the raw token as body (any content type but JSON, so
//! `curl --data-binary` works as is), or `{"token": "..."}` as `application/json`. Answers
//! `application/jwt`, or `{"token", "expires_at"}` for `Accept: application/json`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use std::time::Instant;

use super::{AppState, error_response, is_json, read_capped};
use crate::audit::Audit;
use crate::error::{ExchangeError, ReasonCode};
use crate::exchange::ExchangeRequest;
use crate::metrics::ExchangeRecord;
use crate::subject::SubjectKind;

/// Slack allowed above the token size for a JSON request body.
const JSON_OVERHEAD: usize = 1024;

fn issuer_id(request: &HttpRequest) -> Result<Option<String>, ExchangeError> {
    let mut found = None;
    for (key, value) in url::form_urlencoded::parse(request.query_string().as_bytes()) {
        match key.as_ref() {
            "issuerId" if found.is_none() => found = Some(value.into_owned()),
            "issuerId" => {
                return Err(ExchangeError::coded(
                    ReasonCode::InvalidParameter,
                    "issuerId is given more than once",
                ));
            }
            "token" | "id_token" => {
                return Err(ExchangeError::coded(
                    ReasonCode::TokenInUrl,
                    "never put a token in the URL: send it as the request body",
                ));
            }
            _ => {}
        }
    }
    Ok(found)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRequest {
    token: String,
}

pub(super) async fn exchange(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    let (result, audit) = match read_token(&request, payload, state.max_token_bytes).await {
        Ok((token, issuer_id)) => {
            state
                .exchanger
                .exchange(&ExchangeRequest {
                    kind: SubjectKind::Oidc,
                    credential: token.trim(),
                    issuer_id: issuer_id.as_deref(),
                })
                .await
        }
        Err(e) => (Err(e), Audit::default()),
    };
    audit.emit(result.as_ref().map(drop));
    state.recorder.exchange(&ExchangeRecord {
        issuer_id: audit.issuer_id.as_deref().filter(|_| audit.issuer_resolved),
        kind: SubjectKind::Oidc,
        outcome: result.as_ref().map(drop),
        elapsed: started.elapsed(),
    });
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

/// The token and the issuer id of a request, read within the body cap.
async fn read_token(
    request: &HttpRequest,
    payload: web::Payload,
    max_token: usize,
) -> Result<(String, Option<String>), ExchangeError> {
    let issuer_id = issuer_id(request)?;
    let json_body = is_json(request, header::CONTENT_TYPE);
    let body = read_capped(
        payload,
        max_token + if json_body { JSON_OVERHEAD } else { 2 },
    )
    .await?;
    let token = if json_body {
        serde_json::from_slice::<JsonRequest>(&body)
            .map_err(|_| {
                ExchangeError::coded(
                    ReasonCode::MalformedRequest,
                    "the JSON body must be {\"token\": \"<JWT>\"}",
                )
            })?
            .token
    } else {
        String::from_utf8(body).map_err(|_| {
            ExchangeError::coded(
                ReasonCode::NotAJwt,
                "the body is not a JWT (not UTF-8 text)",
            )
        })?
    };
    Ok((token, issuer_id))
}
