//! `POST /exchange[?issuerId=ID]`: the raw token as body (any content type but JSON, so
//! `curl --data-binary` works as is), or `{"token": "..."}` as `application/json`. Answers
//! `application/jwt`, or `{"token", "expires_at"}` for `Accept: application/json`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use std::time::Instant;

use super::{AppState, accepts_json, error_response, header_text, names_json, read_capped};
use crate::audit::Audit;
use crate::error::{ExchangeError, ReasonCode};
use crate::exchange::ExchangeRequest;
use crate::metrics::ExchangeRecord;
use crate::subject::SubjectKind;

/// Slack allowed above the token size for a JSON request body.
const JSON_OVERHEAD: usize = 1024;

/// The `issuerId` of a `POST /exchange` query string, refusing a repeated one and a token in
/// the URL. Pure, so it can be fuzzed.
pub fn issuer_id_from_query(query: &str) -> Result<Option<String>, ExchangeError> {
    let mut found = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
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

/// The documented JSON body, `{"token": "<JWT>"}`: an object with exactly that member, once.
/// serde's derived form would also take the sequence `["<JWT>"]` and a repeated member.
struct JsonRequest {
    token: String,
}

impl<'de> serde::Deserialize<'de> for JsonRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<JsonRequest, D::Error> {
        struct Body;
        impl<'de> serde::de::Visitor<'de> for Body {
            type Value = JsonRequest;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"an object {"token": "<JWT>"}"#)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<JsonRequest, A::Error> {
                use serde::de::Error as _;
                let mut token = None;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key != "token" {
                        return Err(A::Error::unknown_field(&key, &["token"]));
                    }
                    if token.is_some() {
                        return Err(A::Error::duplicate_field("token"));
                    }
                    token = Some(map.next_value::<String>()?);
                }
                token
                    .map(|token| JsonRequest { token })
                    .ok_or_else(|| A::Error::missing_field("token"))
            }
        }
        d.deserialize_map(Body)
    }
}

/// The token in a `POST /exchange` body: the body itself (UTF-8 text), or, for a JSON body
/// (`json`: the `Content-Type` names JSON), its `token` member. Pure, so it can be fuzzed;
/// the refusals never quote the body.
pub fn token_from_body(json: bool, body: Vec<u8>) -> Result<String, ExchangeError> {
    if json {
        serde_json::from_slice::<JsonRequest>(&body)
            .map(|r| r.token)
            .map_err(|_| {
                ExchangeError::coded(
                    ReasonCode::MalformedRequest,
                    "the JSON body must be {\"token\": \"<JWT>\"}",
                )
            })
    } else {
        String::from_utf8(body).map_err(|_| {
            ExchangeError::coded(
                ReasonCode::NotAJwt,
                "the body is not a JWT (not UTF-8 text)",
            )
        })
    }
}

pub(super) async fn exchange(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    let (result, audit) = match read_token(&request, payload, &state).await {
        Ok((token, issuer_id)) => {
            state
                .exchanger
                .exchange(&ExchangeRequest {
                    kind: SubjectKind::Oidc,
                    credential: token.trim(),
                    issuer_id: issuer_id.as_deref(),
                    audience: None,
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
            if header_text(&request, header::ACCEPT).is_some_and(accepts_json) {
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

/// The token and the issuer id of a request, read within the body cap and deadline.
async fn read_token(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<(String, Option<String>), ExchangeError> {
    let max_token = state.max_token_bytes;
    let issuer_id = issuer_id_from_query(request.query_string())?;
    let json_body = header_text(request, header::CONTENT_TYPE).is_some_and(names_json);
    // A raw token may end with a newline (`curl --data-binary @file`); JSON has its overhead.
    let limit = max_token + if json_body { JSON_OVERHEAD } else { 2 };
    let shown = format!("the {max_token} bytes a token may have (verify.max_token_bytes)");
    let body = read_capped(
        request,
        payload,
        limit,
        &shown,
        state.body_timeout,
        &state.counters,
    )
    .await?;
    Ok((token_from_body(json_body, body)?, issuer_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Refusal;

    #[test]
    fn json_bodies_are_the_documented_object_only() {
        assert_eq!(
            token_from_body(true, br#"{"token": "a.b.c"}"#.to_vec()).unwrap(),
            "a.b.c"
        );
        for bad in [
            r#"["a.b.c"]"#,
            r#"{"token": "a", "token": "b"}"#,
            r#"{"token": "a", "x": 1}"#,
            r#"{}"#,
            r#"{"token": 5}"#,
            r#""a.b.c""#,
            r#"{"token": "a"} trailing"#,
        ] {
            let err = token_from_body(true, bad.as_bytes().to_vec()).unwrap_err();
            assert_eq!(err.refusal, Refusal::Malformed, "{bad}");
            assert!(!err.description.contains("a.b.c"), "{bad}");
        }
        assert_eq!(
            token_from_body(false, b"a.b.c\n".to_vec()).unwrap(),
            "a.b.c\n"
        );
        assert!(token_from_body(false, vec![0xff]).is_err());
    }
}
