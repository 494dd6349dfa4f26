//! `GET /metrics`: volumes by state, failovers, and which servers control counts as serving,
//! built at scrape time from the snapshot the control loop publishes after every round.

use std::sync::{Arc, PoisonError, RwLock};

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use outage_lab_ebs_events::VolumeState;
use outage_lab_proto::metrics;
use outage_lab_proto::metrics::prometheus_client::metrics::counter::Counter;
use outage_lab_proto::metrics::prometheus_client::metrics::family::Family;
use outage_lab_proto::metrics::prometheus_client::metrics::gauge::Gauge;
use outage_lab_proto::metrics::prometheus_client::registry::Registry;

use crate::Snapshot;

pub(crate) async fn serve(State(snapshot): State<Arc<RwLock<Snapshot>>>) -> impl IntoResponse {
    let snap = snapshot
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mut registry = Registry::with_prefix(metrics::PREFIX);
    let by_state = Family::<Vec<(&'static str, String)>, Gauge>::default();
    for state in [
        VolumeState::Healthy,
        VolumeState::Degraded,
        VolumeState::Stuck,
    ] {
        let n = snap.volumes.iter().filter(|v| v.state == state).count();
        by_state
            .get_or_create(&vec![("state", state.to_string())])
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    registry.register(
        "control_volumes",
        "Volumes by state: healthy (two serving copies), degraded (one, failing over), stuck (I/O refused)",
        by_state,
    );
    let attempted = Counter::<u64>::default();
    attempted.inc_by(snap.failovers_attempted);
    registry.register(
        "control_failovers",
        "Failover decisions taken since start",
        attempted,
    );
    let no_capacity = Counter::<u64>::default();
    no_capacity.inc_by(snap.failovers_without_capacity);
    registry.register(
        "control_failovers_without_capacity",
        "Failovers that found no healthy server with a free replica slot",
        no_capacity,
    );
    let healthy = Family::<Vec<(&'static str, String)>, Gauge>::default();
    for (server, ok) in &snap.servers_healthy {
        healthy
            .get_or_create(&vec![("server", server.clone())])
            .set(i64::from(*ok));
    }
    registry.register(
        "control_server_healthy",
        "1 while control counts the storage server as serving I/O (its probes answer in time)",
        healthy,
    );
    register_api(&mut registry, &snap);
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::encode(&registry),
    )
}

/// The API's calls per customer and outcome: the monitoring of who is being throttled that AWS
/// added after 2012.
fn register_api(registry: &mut Registry, snap: &Snapshot) {
    let calls = Family::<Vec<(&'static str, String)>, Counter<u64>>::default();
    for (customer, c) in &snap.api_calls {
        for (outcome, n) in [
            ("served", c.ok),
            ("throttled", c.throttled),
            ("overloaded", c.overloaded),
        ] {
            calls
                .get_or_create(&vec![
                    ("customer", customer.clone()),
                    ("outcome", outcome.into()),
                ])
                .inc_by(n);
        }
    }
    registry.register(
        "control_api_calls",
        "API calls by customer and outcome: served, throttled (429, the throttling policy), overloaded (503, at capacity)",
        calls,
    );
    let policy = Family::<Vec<(&'static str, String)>, Gauge>::default();
    policy
        .get_or_create(&vec![("policy", snap.api_policy.to_owned())])
        .set(1);
    registry.register(
        "control_api_throttle_policy",
        "1 for the throttling policy in force (none, global or per_customer)",
        policy,
    );
}
