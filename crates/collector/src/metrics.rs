//! `GET /metrics`: reports accepted, in all and per storage server, read from the same counters
//! as `/stats` at scrape time.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use outage_lab_proto::metrics;
use outage_lab_proto::metrics::prometheus_client::metrics::counter::Counter;
use outage_lab_proto::metrics::prometheus_client::metrics::family::Family;
use outage_lab_proto::metrics::prometheus_client::registry::Registry;

use crate::Shared;

/// Builds the exposition from a snapshot of the counters (they only ever grow, so each scrape's
/// fresh counters carry the same values a long-lived one would).
pub(crate) async fn serve(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let counts = shared.snapshot();
    let mut registry = Registry::with_prefix(metrics::PREFIX);
    let total = Counter::<u64>::default();
    total.inc_by(counts.total);
    registry.register(
        "collector_reports",
        "Reports this collector accepted",
        total,
    );
    let per_server = Family::<Vec<(&'static str, String)>, Counter>::default();
    for (server, n) in counts.per_server {
        per_server
            .get_or_create(&vec![("server", server)])
            .inc_by(n);
    }
    registry.register(
        "collector_server_reports",
        "Reports this collector accepted, per storage server",
        per_server,
    );
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::encode(&registry),
    )
}
