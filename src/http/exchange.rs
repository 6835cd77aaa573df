//! `POST /exchange[?issuerId=ID]`: the raw token as body (any content type but JSON, so
//! `curl --data-binary` works as is), or `{"token": "..."}` as `application/json`. Answers
//! `application/jwt`, or `{"token", "expires_at"}` for `Accept: application/json`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::{AppState, error_response, is_json, read_capped, refuse};
use crate::error::{ExchangeError, Refusal};
use crate::exchange::ExchangeRequest;
use crate::subject::SubjectKind;

/// Slack allowed above the token size for a JSON request body.
const JSON_OVERHEAD: usize = 1024;

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
    let max_token = state.max_token_bytes;
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
        .exchange(&ExchangeRequest {
            kind: SubjectKind::Oidc,
            credential: token.trim(),
            issuer_id: issuer_id.as_deref(),
        })
        .await;
    audit.emit(result.as_ref().map(drop));
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
