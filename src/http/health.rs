//! `GET /healthz`: `200` with `ok` or `degraded` once the registry has loaded and a key can
//! sign, `503` before; with the registry's and the signer's status. `degraded`: the last
//! registry load failed (the last good one serves), entries were skipped as invalid, or the
//! signer's last signature failed (a KMS key that cannot sign). It is unauthenticated, so it
//! shows status, counts and entry ids only: the registry's source (a file path, an SSM
//! prefix), why entries are invalid and the errors themselves go to the log when they
//! happen, and counters to the metrics listener.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::AppState;

pub(super) async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let registry = state.exchanger.registry().status();
    let signer = state.exchanger.signer();
    let signing = signer.signing_key().is_ok();
    let signer_health = signer.health();
    let ready = registry.last_success_unix.is_some() && signing;
    let status = match (ready, registry.is_degraded() || signer_health.failing) {
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
    .json(serde_json::json!({
        "status": status,
        "registry": {
            "issuers": registry.issuers,
            "invalid_entries": registry.invalid_entries,
            "shadow_errors": registry.shadow_errors,
            "last_success_unix": registry.last_success_unix,
            "last_load_failed": registry.last_error.is_some(),
            "consecutive_failures": registry.consecutive_failures,
        },
        "signing_key": signing,
        "signer": {
            "failing": signer_health.failing,
            "last_error_unix": signer_health.last_error_unix,
            "last_success_unix": signer_health.last_success_unix,
        },
    }))
}
