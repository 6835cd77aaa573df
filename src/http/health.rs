//! `GET /healthz`: `200` with `ok` or `degraded` once the registry has loaded and a key can
//! sign, `503` before; with the registry's and the signer's status. `degraded`: the last
//! registry load failed (the last good one serves), entries were skipped as invalid (named
//! by id; why is in the log), or the signer's last signature failed (a KMS key that cannot
//! sign).

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
        "registry": registry,
        "signing_key": signing,
        "signer": signer_health,
    }))
}
