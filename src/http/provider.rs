//! claimex as an OIDC provider: its discovery document and the JWKS of its signing keys,
//! which IAM reads to trust the tokens claimex mints.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};

use super::AppState;
use crate::exchange::Exchanger;

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
        "token_endpoint": format!("{url}/token"),
        "grant_types_supported": [super::TOKEN_EXCHANGE_GRANT],
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

pub(super) async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    cacheable(discovery_document(&state.exchanger))
}

pub(super) async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    cacheable(serde_json::json!({"keys": state.exchanger.signer().published()}))
}
