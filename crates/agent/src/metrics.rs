//! `GET /metrics` on the agent's optional metrics listener: reports that succeeded and failed,
//! reports held for retry, and the bytes the retry state retains (the leak, as the agent itself
//! counts it; the watchdog measures the same leak from outside as resident memory).

use std::future::IntoFuture;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use outage_lab_proto::metrics;
use outage_lab_proto::metrics::prometheus_client::metrics::counter::Counter;
use outage_lab_proto::metrics::prometheus_client::metrics::gauge::Gauge;
use outage_lab_proto::metrics::prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The agent's metrics; cheap to clone (every metric is an `Arc` inside).
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    registry: Arc<Registry>,
    pub(crate) ok: Counter,
    pub(crate) failed: Counter,
    pub(crate) pending: Gauge,
    pub(crate) retained: Gauge,
}

impl Metrics {
    pub(crate) fn new(server: &str) -> Self {
        let mut registry = Registry::with_prefix_and_labels(
            metrics::PREFIX,
            [("server".into(), server.to_owned().into())].into_iter(),
        );
        let ok = Counter::default();
        registry.register(
            "agent_reports_ok",
            "Reports the collector accepted",
            ok.clone(),
        );
        let failed = Counter::default();
        registry.register(
            "agent_reports_failed",
            "Report attempts that failed (resolution or POST)",
            failed.clone(),
        );
        let pending = Gauge::default();
        registry.register(
            "agent_reports_pending",
            "Reports held for retry",
            pending.clone(),
        );
        let retained = Gauge::default();
        registry.register_with_unit(
            "agent_retained",
            "Memory the retry state retains (the leak in leaky mode)",
            Unit::Bytes,
            retained.clone(),
        );
        Self {
            registry: Arc::new(registry),
            ok,
            failed,
            pending,
            retained,
        }
    }

    /// Serves `/metrics` on `listener` until `shutdown`. A failing metrics server is logged, not
    /// fatal: reporting is the agent's job, metrics are a view of it.
    pub(crate) fn serve(&self, listener: TcpListener, shutdown: CancellationToken) {
        let app = Router::new()
            .route("/metrics", get(serve))
            .with_state(Arc::clone(&self.registry));
        let server = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .into_future();
        tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::warn!("agent metrics server failed: {e}");
            }
        });
    }
}

async fn serve(State(registry): State<Arc<Registry>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::encode(&registry),
    )
}
