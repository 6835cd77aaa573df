//! `GET /metrics`: every metric in the OpenMetrics text format, for Prometheus. Served on its
//! own listener (`metrics_listen`), never on the public one: see [`routes`].

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpResponse, web};

use crate::metrics::prometheus::PrometheusMetrics;

/// The OpenMetrics media type (Prometheus 2.5 and later ask for it and read it).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The routes of the metrics listener: `GET /metrics`, and 404 for anything else. The
/// metrics name issuer entries and their refusals: the listener binds to an address only the
/// monitoring system reaches (`127.0.0.1:9464` by default in the docs), apart from the
/// public `/exchange`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(metrics))
        .default_service(web::to(|| async {
            HttpResponse::build(StatusCode::NOT_FOUND)
                .content_type("text/plain; charset=utf-8")
                .body("claimex's metrics listener serves GET /metrics\n")
        }));
}

async fn metrics(metrics: web::Data<Arc<PrometheusMetrics>>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .content_type(CONTENT_TYPE)
        .body(metrics.encode())
}
