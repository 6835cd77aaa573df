//! `GET /healthz`: `200` with `ok` or `degraded` once the registry has loaded and a key can
//! sign, `503` before; with the registry's status. `degraded`: the last registry load failed
//! (the last good one serves), or entries were skipped as invalid (named by id; why is in
//! the log).

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, web};

use super::AppState;

pub(super) async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let registry = state.exchanger.registry().status();
    let signing = state.exchanger.signer().signing_key().is_ok();
    let ready = registry.last_success_unix.is_some() && signing;
    let status = match (ready, registry.is_degraded()) {
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
