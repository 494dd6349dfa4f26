//! `GET /metrics` on the watchdog's admin listener: the resident memory of every watched process
//! (the series both PromQL alarms in `compose/prometheus/rules.yml` read), each server's memory
//! budget, and how many alarms of each kind the watchdog itself raised.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use outage_lab_ebs_events::wire::Target;
use outage_lab_ebs_events::{AlarmKind, RssSample};
use outage_lab_proto::metrics;
use outage_lab_proto::metrics::prometheus_client::metrics::counter::Counter;
use outage_lab_proto::metrics::prometheus_client::metrics::family::Family;
use outage_lab_proto::metrics::prometheus_client::metrics::gauge::Gauge;
use outage_lab_proto::metrics::prometheus_client::registry::{Registry, Unit};

/// Labels of a process series: `role`, `server`, `stale`.
type ProcessLabels = Vec<(&'static str, String)>;

/// The watchdog's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    resident: Family<ProcessLabels, Gauge>,
    budget: Family<Vec<(&'static str, String)>, Gauge>,
    alarms: Family<Vec<(&'static str, String)>, Counter>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix(metrics::PREFIX);
        let resident = Family::<ProcessLabels, Gauge>::default();
        registry.register_with_unit(
            "resident_memory",
            "Resident memory of one watched process at the last sweep, by role, server and whether its agent resolves through a stale DNS server",
            Unit::Bytes,
            resident.clone(),
        );
        let budget = Family::<Vec<(&'static str, String)>, Gauge>::default();
        registry.register_with_unit(
            "server_memory_budget",
            "Memory budget of one storage server (storage and agent together), as the harness declared it",
            Unit::Bytes,
            budget.clone(),
        );
        let alarms = Family::<Vec<(&'static str, String)>, Counter>::default();
        registry.register(
            "watchdog_alarms",
            "Alarms the watchdog raised, by kind (leak: per-process trend; aggregate: the 2012 per-server threshold)",
            alarms.clone(),
        );
        // Both kinds are exported from the start, so a silent alarm reads 0, not "no data".
        for kind in AlarmKind::ALL {
            drop(alarms.get_or_create(&vec![("kind", kind.to_string())]));
        }
        Self {
            registry,
            resident,
            budget,
            alarms,
        }
    }

    /// Replaces the resident-memory series with one sweep's samples: a process that is gone has
    /// no series any more, rather than its last value forever.
    pub(crate) fn record_sweep(&self, samples: &[RssSample], targets: &[Target]) {
        // Staleness belongs to the server (which DNS server its agent asks); pids may repeat
        // across containers.
        let stale: HashMap<&str, bool> = (targets.iter())
            .map(|t| (t.server.as_str(), t.stale))
            .collect();
        self.resident.clear();
        for s in samples {
            let labels = vec![
                ("role", s.role.to_string()),
                ("server", s.server.clone()),
                (
                    "stale",
                    (stale.get(s.server.as_str()).copied())
                        .unwrap_or(false)
                        .to_string(),
                ),
            ];
            self.resident
                .get_or_create(&labels)
                .set(i64::try_from(s.rss_bytes).unwrap_or(i64::MAX));
        }
        self.budget.clear();
        for t in targets {
            self.budget
                .get_or_create(&vec![("server", t.server.clone())])
                .set(i64::try_from(t.budget_bytes).unwrap_or(i64::MAX));
        }
    }

    /// Counts one alarm.
    pub(crate) fn alarm(&self, kind: AlarmKind) {
        self.alarms
            .get_or_create(&vec![("kind", kind.to_string())])
            .inc();
    }

    /// The route serving these metrics.
    pub(crate) fn router(self: Arc<Self>) -> Router {
        Router::new().route("/metrics", get(serve)).with_state(self)
    }
}

async fn serve(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::encode(&m.registry),
    )
}

#[cfg(test)]
mod tests {
    use outage_lab_ebs_events::ProcessRole;

    use super::*;

    #[test]
    fn a_sweep_exports_resident_memory_with_the_stale_label_and_drops_gone_processes() {
        let m = Metrics::new();
        let target = |server: &str, pid, stale| Target {
            server: server.into(),
            role: ProcessRole::Agent,
            pid,
            budget_bytes: 1 << 20,
            stale,
            cache_url: None,
            tree: false,
            reader: None,
        };
        let sample = |server: &str, pid, rss_bytes| RssSample {
            server: server.into(),
            role: ProcessRole::Agent,
            pid,
            rss_bytes,
        };
        let targets = [target("s000", 10, true), target("s001", 11, false)];
        m.record_sweep(
            &[sample("s000", 10, 5000), sample("s001", 11, 4000)],
            &targets,
        );
        m.alarm(AlarmKind::Leak);
        let text = metrics::encode(&m.registry);
        assert!(text.contains(
            "outage_lab_resident_memory_bytes{role=\"agent\",server=\"s000\",stale=\"true\"} 5000\n"
        ));
        assert!(text.contains("outage_lab_watchdog_alarms_total{kind=\"leak\"} 1\n"));
        assert!(text.contains("outage_lab_watchdog_alarms_total{kind=\"aggregate\"} 0\n"));

        m.record_sweep(&[sample("s001", 11, 4100)], &targets);
        let text = metrics::encode(&m.registry);
        assert!(!text.contains("server=\"s000\",stale"), "{text}");
        assert!(text.contains("stale=\"false\"} 4100\n"));
    }
}
