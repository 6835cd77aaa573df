//! `POST /token[?issuerId=ID]`: RFC 8693 token exchange, form-encoded, through the same core
//! as `/exchange`. The request is `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`
//! with `subject_token` and `subject_token_type` (an OIDC token: `…:token-type:jwt` or
//! `…:token-type:id_token`; a signed AWS request: `…:aws:token-type:aws4_request`), optional
//! `requested_token_type`, `audience` (one, the outbound `aud`) and `issuer_id` (or
//! `?issuerId=`).
//!
//! `requested_token_type` is `…:token-type:jwt` (the default: a claimex JWT) or claimex's own
//! [`AWS_CREDENTIALS_TOKEN_TYPE`]: AWS credentials for the form's `role_arn`,
//! `duration_seconds` and `role_session_name`, through the code path of `POST /credentials`
//! (its `assume_role`: the entry's `allowed_roles` checked before STS, then the unsigned
//! `AssumeRoleWithWebIdentity` with the token just minted). Their `access_token` is the
//! `credential_process` JSON as a string; `expires_in` counts to the credentials' expiry.
//!
//! The answer is RFC 8693 §2.2.1 JSON with `Cache-Control: no-store`; refusals are RFC 6749
//! §5.2 errors, all with status 400 but `access_denied` (403), `server_error` (500; 502 when
//! STS refuses claimex's token) and `temporarily_unavailable` (503 with `Retry-After`).

use std::time::Instant;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};

use super::{AppState, error_response, header_text, read_capped};
use crate::audit::Audit;
use crate::credentials::CredentialsRequest;
use crate::error::{ExchangeError, ReasonCode, shown};
use crate::exchange::ExchangeRequest;
use crate::metrics::ExchangeRecord;
use crate::subject::SubjectKind;

/// The grant type of RFC 8693.
pub const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type of a JWT (RFC 8693 §3): what claimex issues, and an OIDC subject token.
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// The token type of an OIDC id-token (RFC 8693 §3).
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// claimex's own token type (RFC 8693 §3 lets a server define its URIs) for AWS credentials:
/// asked as `requested_token_type`, answered as `issued_token_type` with the
/// `credential_process` JSON (`{"Version": 1, "AccessKeyId", ...}`) as `access_token`.
pub const AWS_CREDENTIALS_TOKEN_TYPE: &str = "urn:claimex:params:oauth:token-type:aws-credentials";

/// Room for the other parameters and percent-encoding, above the token's own cap.
const FORM_OVERHEAD: usize = 4096;

/// A `POST /token` request, parsed and checked: what the core needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    /// The kind `subject_token_type` names.
    pub kind: SubjectKind,
    /// The subject token.
    pub subject_token: String,
    /// The issuer id (`issuer_id`, or `?issuerId=`).
    pub issuer_id: Option<String>,
    /// The one audience asked for.
    pub audience: Option<String>,
    /// `Some` when `requested_token_type` is [`AWS_CREDENTIALS_TOKEN_TYPE`]: AWS credentials,
    /// for these role parameters. `None`: a JWT.
    pub credentials: Option<CredentialsRequest>,
}

fn refused(code: ReasonCode, description: impl Into<String>) -> ExchangeError {
    ExchangeError::coded(code, description)
}

/// Parses a `POST /token` form body and query string. Pure, so it can be fuzzed; refusals
/// never quote the token. Every parameter may appear once (RFC 6749 §3.2), `audience` too
/// (claimex mints for one audience); unknown parameters are ignored (RFC 6749 §3.2), e.g. a
/// client's `client_id`. The role parameters (`role_arn`, `duration_seconds`,
/// `role_session_name`) go with `requested_token_type` [`AWS_CREDENTIALS_TOKEN_TYPE`] only:
/// without it they are refused, as a client that forgot it would otherwise get a JWT.
pub fn parse_token_request(query: &str, body: &[u8]) -> Result<TokenRequest, ExchangeError> {
    let query_issuer = super::issuer_id_from_query(query)?;
    for (key, _) in url::form_urlencoded::parse(query.as_bytes()) {
        if key == "subject_token" || key == "actor_token" {
            return Err(refused(
                ReasonCode::TokenInUrl,
                "never put a token in the URL: send it in the form body",
            ));
        }
    }
    let mut grant_type = None;
    let mut subject_token = None;
    let mut subject_token_type = None;
    let mut requested_token_type = None;
    let mut audience = None;
    let mut issuer_id = None;
    let mut role_arn = None;
    let mut duration_seconds = None;
    let mut role_session_name = None;
    for (key, value) in url::form_urlencoded::parse(body) {
        let slot = match key.as_ref() {
            "grant_type" => &mut grant_type,
            "subject_token" => &mut subject_token,
            "subject_token_type" => &mut subject_token_type,
            "requested_token_type" => &mut requested_token_type,
            "audience" => {
                if audience.is_some() {
                    return Err(refused(
                        ReasonCode::AudienceNotAllowed,
                        "claimex mints a token for one audience: give `audience` once",
                    ));
                }
                &mut audience
            }
            "issuer_id" => &mut issuer_id,
            "role_arn" => &mut role_arn,
            "duration_seconds" => &mut duration_seconds,
            "role_session_name" => &mut role_session_name,
            "resource" => {
                return Err(refused(
                    ReasonCode::AudienceNotAllowed,
                    "claimex does not take `resource`: name the target with `audience`",
                ));
            }
            "actor_token" | "actor_token_type" => {
                return Err(refused(
                    ReasonCode::ActorTokenUnsupported,
                    "claimex does not support delegation: send no actor_token",
                ));
            }
            _ => continue,
        };
        if slot.is_some() {
            return Err(refused(
                ReasonCode::InvalidParameter,
                format!("the parameter {key} is given more than once"),
            ));
        }
        *slot = Some(value.into_owned());
    }
    let grant_type = grant_type.ok_or_else(|| {
        refused(
            ReasonCode::MissingParameter,
            format!("grant_type is missing: send grant_type={TOKEN_EXCHANGE_GRANT}"),
        )
    })?;
    if grant_type != TOKEN_EXCHANGE_GRANT {
        return Err(refused(
            ReasonCode::UnsupportedGrantType,
            format!(
                "claimex supports the grant type {TOKEN_EXCHANGE_GRANT} only, not {}",
                shown(&grant_type, 128)
            ),
        ));
    }
    let subject_token = subject_token
        .filter(|t| !t.is_empty())
        .ok_or_else(|| refused(ReasonCode::MissingParameter, "subject_token is missing"))?;
    let token_type = subject_token_type.ok_or_else(|| {
        refused(
            ReasonCode::MissingParameter,
            format!("subject_token_type is missing: send {JWT_TOKEN_TYPE} for an OIDC token"),
        )
    })?;
    let kind = subject_kind(&token_type).ok_or_else(|| {
        refused(
            ReasonCode::UnsupportedTokenType,
            format!(
                "claimex does not read subject tokens of type {}; it reads {}",
                shown(&token_type, 128),
                SUBJECT_TOKEN_TYPES
                    .iter()
                    .map(|(t, _)| *t)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })?;
    let wants_credentials = match requested_token_type.as_deref() {
        None | Some(JWT_TOKEN_TYPE) => false,
        Some(AWS_CREDENTIALS_TOKEN_TYPE) => true,
        Some(requested) => {
            return Err(refused(
                ReasonCode::UnsupportedRequestedTokenType,
                format!(
                    "claimex issues {JWT_TOKEN_TYPE} and {AWS_CREDENTIALS_TOKEN_TYPE} only, not {}",
                    shown(requested, 128)
                ),
            ));
        }
    };
    let credentials = if wants_credentials {
        Some(CredentialsRequest {
            role_arn,
            duration_seconds: duration_seconds
                .as_deref()
                .map(super::credentials::duration)
                .transpose()?,
            role_session_name,
        })
    } else if role_arn.is_some() || duration_seconds.is_some() || role_session_name.is_some() {
        return Err(refused(
            ReasonCode::InvalidParameter,
            format!(
                "role_arn, duration_seconds and role_session_name ask for AWS credentials: \
                 send requested_token_type={AWS_CREDENTIALS_TOKEN_TYPE} with them"
            ),
        ));
    } else {
        None
    };
    let issuer_id = match (issuer_id, query_issuer) {
        (Some(form), Some(query)) if form != query => {
            return Err(refused(
                ReasonCode::InvalidParameter,
                "issuer_id and ?issuerId= name different issuers: give one",
            ));
        }
        (Some(id), _) | (None, Some(id)) => Some(id),
        (None, None) => None,
    };
    if audience.as_deref() == Some("") {
        return Err(refused(
            ReasonCode::AudienceNotAllowed,
            "audience is empty: leave it out or name the target",
        ));
    }
    Ok(TokenRequest {
        kind,
        subject_token,
        issuer_id,
        audience,
        credentials,
    })
}

/// The subject token types claimex reads, and the kind each names.
pub const SUBJECT_TOKEN_TYPES: &[(&str, SubjectKind)] = &[
    (JWT_TOKEN_TYPE, SubjectKind::Oidc),
    (ID_TOKEN_TYPE, SubjectKind::Oidc),
    (
        crate::subject::aws_iam::AWS4_REQUEST_TOKEN_TYPE,
        SubjectKind::AwsIam,
    ),
];

fn subject_kind(token_type: &str) -> Option<SubjectKind> {
    SUBJECT_TOKEN_TYPES
        .iter()
        .find(|(t, _)| *t == token_type)
        .map(|(_, k)| *k)
}

/// Whether a `Content-Type` value is `application/x-www-form-urlencoded` (parameters allowed).
fn names_form(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|m| {
        m.trim()
            .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    })
}

/// An RFC 6749 §5.2 error for the token endpoint: the `/exchange` error body and headers,
/// with status 400 where `/exchange` answers 401 (RFC 6749 §5.2: `invalid_grant` is a 400).
fn token_error(error: &ExchangeError) -> HttpResponse {
    let mut response = error_response(error);
    if response.status() == StatusCode::UNAUTHORIZED {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    response
}

pub(super) async fn token(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    let (kind, asked, (result, audit)) = match read_request(&request, payload, &state).await {
        Ok(parsed) => (
            parsed.kind,
            parsed.credentials,
            state
                .exchanger
                .exchange(&ExchangeRequest {
                    kind: parsed.kind,
                    credential: parsed.subject_token.trim(),
                    issuer_id: parsed.issuer_id.as_deref(),
                    audience: parsed.audience.as_deref(),
                })
                .await,
        ),
        Err(e) => (SubjectKind::Oidc, None, (Err(e), Audit::default())),
    };
    audit.emit(result.as_ref().map(drop));
    state.recorder.exchange(&ExchangeRecord {
        issuer_id: audit.issuer_id.as_deref().filter(|_| audit.issuer_resolved),
        kind,
        outcome: result.as_ref().map(drop),
        elapsed: started.elapsed(),
    });
    let minted = match result {
        Ok(minted) => minted,
        Err(e) => return token_error(&e),
    };
    let (access_token, issued_token_type, expires_in) = match asked {
        None => (
            minted.token,
            JWT_TOKEN_TYPE,
            minted.expires_at.saturating_sub(minted.issued_at),
        ),
        Some(asked) => {
            match super::credentials::assume_role(&state, &audit, &minted.token, &asked).await {
                Ok(credentials) => (
                    credentials.credential_process_json(),
                    AWS_CREDENTIALS_TOKEN_TYPE,
                    credentials.expires_at.saturating_sub(state.exchanger.now()),
                ),
                Err(e) => return token_error(&e),
            }
        }
    };
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(serde_json::json!({
            "access_token": access_token,
            "issued_token_type": issued_token_type,
            "token_type": "N_A",
            "expires_in": expires_in,
        }))
}

async fn read_request(
    request: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<TokenRequest, ExchangeError> {
    if !header_text(request, header::CONTENT_TYPE).is_some_and(names_form) {
        return Err(refused(
            ReasonCode::NotAForm,
            "send the request as application/x-www-form-urlencoded (RFC 8693 §2.1)",
        ));
    }
    let max_token = state.max_token_bytes;
    // Percent-encoding may triple a token's size.
    let limit = max_token * 3 + FORM_OVERHEAD;
    let shown = format!(
        "{limit} bytes (three times the {max_token} bytes a token may have, verify.max_token_bytes, and {FORM_OVERHEAD} for the other parameters)"
    );
    let body = read_capped(
        request,
        payload,
        limit,
        &shown,
        state.body_timeout,
        &state.counters,
    )
    .await?;
    let parsed = parse_token_request(request.query_string(), &body)?;
    if parsed.subject_token.len() > max_token + 2 {
        return Err(ExchangeError::coded(
            ReasonCode::TokenTooLarge,
            format!(
                "the subject token is larger than the {max_token} bytes a token may have (verify.max_token_bytes)"
            ),
        ));
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<u8> {
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
            .into_bytes()
    }

    fn ok() -> Vec<(&'static str, &'static str)> {
        vec![
            ("grant_type", TOKEN_EXCHANGE_GRANT),
            ("subject_token", "a.b.c"),
            ("subject_token_type", ID_TOKEN_TYPE),
        ]
    }

    fn code(query: &str, pairs: &[(&str, &str)]) -> String {
        parse_token_request(query, &form(pairs))
            .unwrap_err()
            .reason_code()
            .to_owned()
    }

    #[test]
    fn parses_a_token_exchange() {
        let mut pairs = ok();
        pairs.extend([
            ("audience", "sts.amazonaws.com"),
            ("issuer_id", "github"),
            ("requested_token_type", JWT_TOKEN_TYPE),
            ("client_id", "ignored"),
        ]);
        let parsed = parse_token_request("", &form(&pairs)).unwrap();
        assert_eq!(parsed.kind, SubjectKind::Oidc);
        assert_eq!(parsed.subject_token, "a.b.c");
        assert_eq!(parsed.issuer_id.as_deref(), Some("github"));
        assert_eq!(parsed.audience.as_deref(), Some("sts.amazonaws.com"));
        let parsed = parse_token_request("issuerId=gl", &form(&ok())).unwrap();
        assert_eq!(parsed.issuer_id.as_deref(), Some("gl"));
        assert_eq!(parsed.audience, None);
    }

    #[test]
    fn refuses_each_bad_request_with_its_code() {
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut p = ok();
            p.extend_from_slice(extra);
            p
        };
        let without = |name: &str| {
            ok().into_iter()
                .filter(|(k, _)| *k != name)
                .collect::<Vec<_>>()
        };
        assert_eq!(code("", &without("grant_type")), "missing_parameter");
        assert_eq!(code("", &without("subject_token")), "missing_parameter");
        assert_eq!(
            code("", &without("subject_token_type")),
            "missing_parameter"
        );
        let mut password = without("grant_type");
        password.push(("grant_type", "password"));
        assert_eq!(code("", &password), "unsupported_grant_type");
        let mut saml = without("subject_token_type");
        saml.push((
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:saml2",
        ));
        assert_eq!(code("", &saml), "unsupported_token_type");
        assert_eq!(
            code(
                "",
                &with(&[(
                    "requested_token_type",
                    "urn:ietf:params:oauth:token-type:access_token"
                )])
            ),
            "unsupported_requested_token_type"
        );
        assert_eq!(
            code("", &with(&[("audience", "a"), ("audience", "b")])),
            "audience_not_allowed"
        );
        assert_eq!(
            code("", &with(&[("resource", "https://x")])),
            "audience_not_allowed"
        );
        assert_eq!(
            code("", &with(&[("actor_token", "x")])),
            "actor_token_unsupported"
        );
        assert_eq!(
            code("", &with(&[("subject_token", "again")])),
            "invalid_parameter"
        );
        assert_eq!(
            code("issuerId=a", &with(&[("issuer_id", "b")])),
            "invalid_parameter"
        );
        assert_eq!(code("subject_token=x", &ok()), "token_in_url");
        let err = parse_token_request("", &form(&with(&[("audience", "a"), ("audience", "b")])))
            .unwrap_err();
        assert_eq!(err.code().as_str(), "invalid_target");
        assert_eq!(
            parse_token_request("", &form(&password))
                .unwrap_err()
                .code()
                .as_str(),
            "unsupported_grant_type"
        );
        assert!(
            !format!(
                "{:?}",
                parse_token_request("", &form(&with(&[("subject_token", "secret.tok.en")])))
            )
            .contains("secret")
        );
    }

    /// Found by the aws_request fuzz target: a value of control characters, cut to 128
    /// characters *before* escaping, escaped to 768 and made an over-long description.
    #[test]
    fn a_quoted_value_is_bounded_after_escaping() {
        let hostile = format!("urn:x{}", "\u{15}".repeat(300));
        for (name, cut) in [
            ("grant_type", "grant_type"),
            ("subject_token_type", "subject_token_type"),
            ("requested_token_type", "requested_token_type"),
        ] {
            let mut pairs = ok();
            pairs.retain(|(k, _)| *k != name);
            pairs.push((cut, &hostile));
            let e = parse_token_request("", &form(&pairs)).unwrap_err();
            assert!(e.description.len() < 400, "{name}: {}", e.description);
            assert!(!e.description.contains('\u{15}'), "{name}");
        }
    }

    #[test]
    fn aws_credentials_are_asked_with_their_token_type() {
        let mut pairs = ok();
        pairs.extend([
            ("requested_token_type", AWS_CREDENTIALS_TOKEN_TYPE),
            ("role_arn", "arn:aws:iam::123456789012:role/ci/deploy"),
            ("duration_seconds", "900"),
            ("role_session_name", "job-1"),
        ]);
        let parsed = parse_token_request("", &form(&pairs)).unwrap();
        assert_eq!(
            parsed.credentials,
            Some(CredentialsRequest {
                role_arn: Some("arn:aws:iam::123456789012:role/ci/deploy".into()),
                duration_seconds: Some(900),
                role_session_name: Some("job-1".into()),
            })
        );
        // The entry's default role: no role parameter at all.
        let mut bare = ok();
        bare.push(("requested_token_type", AWS_CREDENTIALS_TOKEN_TYPE));
        let parsed = parse_token_request("", &form(&bare)).unwrap();
        assert_eq!(parsed.credentials, Some(CredentialsRequest::default()));
        // A JWT: no credentials.
        assert_eq!(
            parse_token_request("", &form(&ok())).unwrap().credentials,
            None
        );

        let with = |extra: &[(&'static str, &'static str)]| {
            let mut p = bare.clone();
            p.extend_from_slice(extra);
            p
        };
        assert_eq!(
            code("", &with(&[("duration_seconds", "an hour")])),
            "invalid_parameter"
        );
        assert_eq!(
            code("", &with(&[("role_arn", "a"), ("role_arn", "b")])),
            "invalid_parameter"
        );
        // Role parameters without the token type: refused, not silently a JWT.
        for name in ["role_arn", "duration_seconds", "role_session_name"] {
            let mut p = ok();
            p.push((name, "900"));
            let e = parse_token_request("", &form(&p)).unwrap_err();
            assert_eq!(e.reason_code(), "invalid_parameter", "{name}");
            assert!(e.description.contains(AWS_CREDENTIALS_TOKEN_TYPE), "{e}");
        }
    }

    proptest::proptest! {
        /// Any query and form body parse to a request or a typed refusal, never a panic, and
        /// a refusal never quotes the subject token.
        #[test]
        fn any_form_is_parsed_or_refused(query in ".{0,80}", body in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            if let Err(e) = parse_token_request(&query, &body) {
                proptest::prop_assert!(!e.description.is_empty());
                proptest::prop_assert!(e.description.len() < 600, "{}", e.description);
            }
        }
    }

    #[test]
    fn form_content_types() {
        assert!(names_form("application/x-www-form-urlencoded"));
        assert!(names_form(
            "Application/X-WWW-Form-Urlencoded; charset=UTF-8"
        ));
        assert!(!names_form("application/json"));
        assert!(!names_form("multipart/form-data"));
    }
}
