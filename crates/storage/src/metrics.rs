//! `GET /metrics` on the storage server's HTTP listener: cache size and target, customer request
//! latency, hits, misses and deadline misses.
//!
//! The counters and cache sizes are the ones `/health` already keeps in [`Shared`]; they are
//! read at scrape time by a collector, so the request path gains no second set of counters. The
//! latency histogram is a middleware around the customer routes ([`instrument`]).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use outage_lab_proto::metrics;
use outage_lab_proto::metrics::prometheus_client::collector::Collector;
use outage_lab_proto::metrics::prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use outage_lab_proto::metrics::prometheus_client::metrics::counter::ConstCounter;
use outage_lab_proto::metrics::prometheus_client::metrics::gauge::ConstGauge;
use outage_lab_proto::metrics::prometheus_client::metrics::histogram::Histogram;
use outage_lab_proto::metrics::prometheus_client::registry::{Registry, Unit};
use tokio::time::Instant;

use crate::shared::Shared;

/// Latency buckets in seconds: a hit takes microseconds, a miss at least the miss penalty
/// (milliseconds), a queue of misses up to the request deadline (about a second).
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_1, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// The storage server's metrics.
#[derive(Debug)]
struct Metrics {
    registry: Registry,
    latency: Histogram,
}

/// Wraps the customer router: times every block request into the latency histogram and adds
/// `GET /metrics`.
pub(crate) fn instrument(customer: Router, server: &str, shared: Arc<Shared>) -> Router {
    let mut registry = Registry::with_prefix_and_labels(
        metrics::PREFIX,
        [("server".into(), server.to_owned().into())].into_iter(),
    );
    let latency = Histogram::new(LATENCY_BUCKETS);
    registry.register_with_unit(
        "storage_request_latency",
        "Time to answer one customer block or volume request, including 503s",
        Unit::Seconds,
        latency.clone(),
    );
    registry.register_collector(Box::new(SharedCollector(shared)));
    let m = Arc::new(Metrics { registry, latency });
    customer
        .layer(middleware::from_fn_with_state(Arc::clone(&m), time_blocks))
        .merge(Router::new().route("/metrics", get(serve)).with_state(m))
}

async fn time_blocks(State(m): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let block = path.starts_with("/blocks/") || path.starts_with("/volumes/");
    let started = Instant::now();
    let response = next.run(req).await;
    if block {
        m.latency.observe(started.elapsed().as_secs_f64());
    }
    response
}

async fn serve(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::encode(&m.registry),
    )
}

/// Reads the counters `/health` keeps, at scrape time.
#[derive(Debug)]
struct SharedCollector(Arc<Shared>);

impl Collector for SharedCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Replicas are not exported here (the volumes module owns them); 0 is a placeholder the
        // fields read below do not depend on.
        let h = self.0.health(0);
        let gauge = |v: u64| ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
        let bytes = Unit::Bytes;
        for (name, help, value) in [
            (
                "storage_cache",
                "Block cache currently resident",
                h.cache_bytes,
            ),
            (
                "storage_cache_target",
                "What the cache should hold given the budget and the agent's memory",
                h.cache_target_bytes,
            ),
            (
                "storage_agent_rss",
                "The agent's resident memory as this storage server last read it",
                h.agent_rss_bytes,
            ),
        ] {
            let g = gauge(value);
            g.encode(encoder.encode_descriptor(name, help, Some(&bytes), g.metric_type())?)?;
        }
        let degraded = gauge(u64::from(h.degraded));
        degraded.encode(encoder.encode_descriptor(
            "storage_degraded",
            "1 when the cache can no longer hold the working set",
            None,
            degraded.metric_type(),
        )?)?;
        for (name, help, value) in [
            (
                "storage_hits",
                "Block requests served from the cache",
                h.hits,
            ),
            (
                "storage_misses",
                "Block requests that went to the disk (including those that then timed out)",
                h.misses,
            ),
            (
                "storage_deadline_misses",
                "Block requests answered 503 deadline exceeded",
                h.deadline_misses,
            ),
        ] {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        Ok(())
    }
}
