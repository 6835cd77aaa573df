//! `POST /credentials`: an id-token in, AWS credentials out. The exchange of `/exchange`
//! (same body reading, same issuer selection, same audit line), then the token just minted
//! goes to `sts:AssumeRoleWithWebIdentity` (unsigned, [`crate::credentials`]) for a role the
//! issuer entry's `allowed_roles` allow, and the role session's credentials come back.
//!
//! The request, either shape:
//! - the raw token as body (any content type but JSON) and the parameters in the query:
//!   `POST /credentials?issuerId=ID&role_arn=ARN&duration_seconds=N&role_session_name=S`;
//! - `Content-Type: application/json` and `{"token": "<JWT>", "role_arn": "...",
//!   "duration_seconds": N, "role_session_name": "..."}` (all but `token` optional; each
//!   parameter in the body or in the query, not both; `issuerId` and `format` in the query).
//!
//! The answer (`Cache-Control: no-store`): the `credential_process` JSON by default, or POSIX
//! `export` lines for `?format=env` or `Accept: text/x-shellscript`. The credentials are never
//! logged; the log names the role, the session and the assumed-role ARN.
//!
//! The step after the exchange (role check, STS call, log) is `assume_role`, which `POST
//! /token` calls too when asked for AWS credentials: one code path for both faces.

use std::time::Instant;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::{AppState, error_response, header_text, names_json, read_capped};
use crate::audit::Audit;
use crate::credentials::{AwsCredentials, CredentialsRequest};
use crate::error::{ExchangeError, ReasonCode, shown};
use crate::exchange::ExchangeRequest;
use crate::metrics::ExchangeRecord;
use crate::subject::SubjectKind;

/// Slack allowed above the token size for a JSON request body (the parameters).
const JSON_OVERHEAD: usize = 4096;

/// How the credentials are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The `credential_process` JSON.
    Json,
    /// `export NAME='value'` lines.
    Env,
}

/// What the query string of `POST /credentials` says.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CredentialsQuery {
    /// `issuerId`.
    pub issuer_id: Option<String>,
    /// `format`: `json` or `env`.
    pub format: Option<Format>,
    /// The role parameters.
    pub request: CredentialsRequest,
}

fn invalid(text: impl Into<String>) -> ExchangeError {
    ExchangeError::coded(ReasonCode::InvalidParameter, text)
}

/// A `duration_seconds` parameter: a whole number of seconds (its range is checked against
/// the issuer entry later). Shared with `POST /token`.
pub(super) fn duration(value: &str) -> Result<u64, ExchangeError> {
    value
        .parse()
        .map_err(|_| invalid("duration_seconds must be a whole number of seconds"))
}

/// Sets `slot` once, refusing a repeat by name.
fn once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), ExchangeError> {
    if slot.is_some() {
        return Err(invalid(format!("{name} is given more than once")));
    }
    *slot = Some(value);
    Ok(())
}

/// Parses the query string: each known parameter at most once, a token in the URL refused,
/// any other parameter refused by name (a typo would otherwise be ignored). Pure.
pub fn credentials_query(query: &str) -> Result<CredentialsQuery, ExchangeError> {
    let mut q = CredentialsQuery::default();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let value = value.into_owned();
        match key.as_ref() {
            "issuerId" => once(&mut q.issuer_id, "issuerId", value)?,
            "format" => {
                let format = match value.as_str() {
                    "json" => Format::Json,
                    "env" => Format::Env,
                    _ => return Err(invalid("format must be json or env")),
                };
                once(&mut q.format, "format", format)?
            }
            "role_arn" => once(&mut q.request.role_arn, "role_arn", value)?,
            "duration_seconds" => once(
                &mut q.request.duration_seconds,
                "duration_seconds",
                duration(&value)?,
            )?,
            "role_session_name" => {
                once(&mut q.request.role_session_name, "role_session_name", value)?
            }
            "token" | "id_token" => {
                return Err(ExchangeError::coded(
                    ReasonCode::TokenInUrl,
                    "never put a token in the URL: send it as the request body",
                ));
            }
            other => {
                // Cut: the name is the caller's, and goes into the answer.
                return Err(invalid(format!(
                    "unknown parameter {}: POST /credentials takes issuerId, format, \
                     role_arn, duration_seconds, role_session_name",
                    shown(other, 32)
                )));
            }
        }
    }
    Ok(q)
}

/// The JSON body: `token` and the optional role parameters, each at most once, nothing else.
struct JsonBody {
    token: String,
    request: CredentialsRequest,
}

impl<'de> serde::Deserialize<'de> for JsonBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<JsonBody, D::Error> {
        struct Visitor;
        const FIELDS: &[&str] = &["token", "role_arn", "duration_seconds", "role_session_name"];
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = JsonBody;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"an object {"token": "<JWT>", "role_arn": "...", ...}"#)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<JsonBody, A::Error> {
                use serde::de::Error as _;
                let mut token = None;
                let mut request = CredentialsRequest::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    match key.as_ref() {
                        "token" if token.is_none() => token = Some(map.next_value::<String>()?),
                        "role_arn" if request.role_arn.is_none() => {
                            request.role_arn = Some(map.next_value()?)
                        }
                        "duration_seconds" if request.duration_seconds.is_none() => {
                            request.duration_seconds = Some(map.next_value()?)
                        }
                        "role_session_name" if request.role_session_name.is_none() => {
                            request.role_session_name = Some(map.next_value()?)
                        }
                        k if FIELDS.contains(&k) => {
                            return Err(A::Error::custom("duplicate field"));
                        }
                        _ => return Err(A::Error::custom("unknown field")),
                    }
                }
                let token = token.ok_or_else(|| A::Error::missing_field("token"))?;
                Ok(JsonBody { token, request })
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// The token and the role parameters of a body (`json`: the `Content-Type` names JSON),
/// merged with the query's; a parameter in both is refused. Pure; never quotes the body.
pub fn credentials_body(
    json: bool,
    body: Vec<u8>,
    query: CredentialsRequest,
) -> Result<(String, CredentialsRequest), ExchangeError> {
    if !json {
        let token = String::from_utf8(body).map_err(|_| {
            ExchangeError::coded(
                ReasonCode::NotAJwt,
                "the body is not a JWT (not UTF-8 text)",
            )
        })?;
        return Ok((token, query));
    }
    let parsed: JsonBody = serde_json::from_slice(&body).map_err(|_| {
        ExchangeError::coded(
            ReasonCode::MalformedRequest,
            "the JSON body must be {\"token\": \"<JWT>\"} with optional \"role_arn\", \
             \"duration_seconds\" (a number), \"role_session_name\", each once",
        )
    })?;
    let mut request = parsed.request;
    let both = |name: &str| invalid(format!("{name} is given both in the query and in the body"));
    if let Some(v) = query.role_arn {
        if request.role_arn.is_some() {
            return Err(both("role_arn"));
        }
        request.role_arn = Some(v);
    }
    if let Some(v) = query.duration_seconds {
        if request.duration_seconds.is_some() {
            return Err(both("duration_seconds"));
        }
        request.duration_seconds = Some(v);
    }
    if let Some(v) = query.role_session_name {
        if request.role_session_name.is_some() {
            return Err(both("role_session_name"));
        }
        request.role_session_name = Some(v);
    }
    Ok((parsed.token, request))
}

/// The format asked for: `?format=`, else `text/x-shellscript` in `Accept` (not `q=0`), else
/// JSON.
fn format_of(request: &HttpRequest, query: Option<Format>) -> Format {
    if let Some(format) = query {
        return format;
    }
    let shell = header_text(request, header::ACCEPT).is_some_and(|accept| {
        accept.split(',').any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0))
            });
            media.eq_ignore_ascii_case("text/x-shellscript") && !refused
        })
    });
    if shell { Format::Env } else { Format::Json }
}

pub(super) async fn credentials(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    match serve(&request, payload, &state).await {
        Ok((format, credentials)) => {
            let mut response = HttpResponse::Ok();
            response
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header((header::PRAGMA, "no-cache"));
            match format {
                Format::Json => response
                    .content_type("application/json")
                    .body(credentials.credential_process_json()),
                Format::Env => response
                    .content_type("text/x-shellscript; charset=utf-8")
                    .body(credentials.shell_exports()),
            }
        }
        Err(e) => error_response(&e),
    }
}

async fn serve(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<(Format, AwsCredentials), ExchangeError> {
    let started = Instant::now();
    let query = credentials_query(request.query_string())?;
    let format = format_of(request, query.format);
    let (token, asked) = read(request, payload, state, query.request).await?;
    let (result, audit) = state
        .exchanger
        .exchange(&ExchangeRequest {
            kind: SubjectKind::Oidc,
            credential: token.trim(),
            issuer_id: query.issuer_id.as_deref(),
            // The token goes to STS: the mapper's audience (`sts.amazonaws.com` by default).
            audience: None,
        })
        .await;
    audit.emit(result.as_ref().map(drop));
    record(state, &audit, result.as_ref().map(drop), started);
    let minted = result?;
    let credentials = assume_role(state, &audit, &minted.token, &asked).await?;
    Ok((format, credentials))
}

/// The AWS half of `POST /credentials`, shared with `POST /token` when it is asked for
/// credentials: after an exchange whose [`Audit`] names the issuer entry and the minted token's
/// `sub`/`jti`, the caller's role parameters are checked against the entry
/// ([`crate::credentials::CredentialsPolicy::resolve`]: a role off `allowed_roles` is refused
/// here, before STS is called), then `state.assumer` calls `AssumeRoleWithWebIdentity` with
/// `minted_token`. Logs the role, the session and the assumed-role ARN, never the credentials.
pub(super) async fn assume_role(
    state: &AppState,
    audit: &Audit,
    minted_token: &str,
    asked: &CredentialsRequest,
) -> Result<AwsCredentials, ExchangeError> {
    let issuer_id = audit
        .issuer_id
        .as_deref()
        .filter(|_| audit.issuer_resolved)
        .unwrap_or_default();
    let issuer = state
        .exchanger
        .registry()
        .snapshot()
        .by_id(issuer_id)
        .map_err(|_| {
            ExchangeError::coded(
                ReasonCode::UnknownIssuer,
                format!("issuer entry {issuer_id:?} was removed during the request: retry"),
            )
        })?;
    let session = issuer.credentials.resolve(
        &issuer.id,
        asked,
        audit.outbound_sub.as_deref(),
        audit.outbound_jti.as_deref(),
    );
    let session = match session {
        Ok(session) => session,
        Err(e) => {
            tracing::info!(issuer_id = %issuer.id, reason_code = e.reason_code(), role_arn = %asked.role_arn.as_deref().unwrap_or_default().chars().take(256).collect::<String>(), "credentials refused before STS");
            return Err(e);
        }
    };
    match state.assumer.assume(&session, minted_token).await {
        Ok(credentials) => {
            tracing::info!(
                issuer_id = %issuer.id,
                role_arn = %session.role_arn,
                role_session_name = %session.session_name,
                duration_seconds = session.duration.as_secs(),
                assumed_role_arn = credentials.assumed_role_arn.as_deref().unwrap_or_default(),
                outbound_jti = audit.outbound_jti.as_deref().unwrap_or_default(),
                expiration = %credentials.expiration,
                "AWS credentials issued"
            );
            Ok(credentials)
        }
        Err(failure) => {
            let e = ExchangeError::from(failure);
            tracing::warn!(
                issuer_id = %issuer.id,
                role_arn = %session.role_arn,
                reason_code = e.reason_code(),
                error = %e.description,
                "STS refused AWS credentials"
            );
            Err(e)
        }
    }
}

fn record(state: &AppState, audit: &Audit, outcome: Result<(), &ExchangeError>, started: Instant) {
    state.recorder.exchange(&ExchangeRecord {
        issuer_id: audit.issuer_id.as_deref().filter(|_| audit.issuer_resolved),
        kind: SubjectKind::Oidc,
        outcome,
        elapsed: started.elapsed(),
    });
}

/// The token and the role parameters, read within the body cap and deadline.
async fn read(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    query: CredentialsRequest,
) -> Result<(String, CredentialsRequest), ExchangeError> {
    let max_token = state.max_token_bytes;
    let json_body = header_text(request, header::CONTENT_TYPE).is_some_and(names_json);
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
    credentials_body(json_body, body, query)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Refusal;

    #[test]
    fn queries() {
        let q = credentials_query(
            "issuerId=gh&format=env&role_arn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fx&duration_seconds=900&role_session_name=s1",
        )
        .unwrap();
        assert_eq!(q.issuer_id.as_deref(), Some("gh"));
        assert_eq!(q.format, Some(Format::Env));
        assert_eq!(
            q.request.role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/x")
        );
        assert_eq!(q.request.duration_seconds, Some(900));
        for (bad, code) in [
            ("issuerId=a&issuerId=b", "invalid_parameter"),
            ("format=xml", "invalid_parameter"),
            ("duration_seconds=soon", "invalid_parameter"),
            ("token=a.b.c", "token_in_url"),
            ("rolearn=x", "invalid_parameter"),
            ("role_arn=a&role_arn=b", "invalid_parameter"),
        ] {
            assert_eq!(
                credentials_query(bad).unwrap_err().reason_code(),
                code,
                "{bad}"
            );
        }
    }

    #[test]
    fn bodies() {
        let (token, r) = credentials_body(
            true,
            br#"{"token": "a.b.c", "role_arn": "R", "duration_seconds": 900}"#.to_vec(),
            CredentialsRequest {
                role_session_name: Some("s".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(token, "a.b.c");
        assert_eq!(r.role_arn.as_deref(), Some("R"));
        assert_eq!(r.role_session_name.as_deref(), Some("s"));
        for bad in [
            r#"{"token": "a.b.c", "token": "x"}"#,
            r#"{"token": "a.b.c", "extra": 1}"#,
            r#"{"role_arn": "R"}"#,
            r#"{"token": "a.b.c", "duration_seconds": "900"}"#,
            r#"["a.b.c"]"#,
        ] {
            let e =
                credentials_body(true, bad.as_bytes().to_vec(), Default::default()).unwrap_err();
            assert_eq!(e.refusal, Refusal::Malformed, "{bad}");
            assert!(!e.description.contains("a.b.c"));
        }
        let e = credentials_body(
            true,
            br#"{"token": "a.b.c", "role_arn": "R"}"#.to_vec(),
            CredentialsRequest {
                role_arn: Some("Q".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert!(e.description.contains("both"), "{e}");
        let (token, _) = credentials_body(false, b"a.b.c\n".to_vec(), Default::default()).unwrap();
        assert_eq!(token, "a.b.c\n");
    }
}
