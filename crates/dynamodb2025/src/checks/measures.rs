//! What a run came to in numbers, from the journal alone like the rows: how long the endpoint
//! answered no address on every DNS server, what the clients saw, and how long the lease
//! manager stayed collapsed. `report.json` keeps them,
//! and `compare` puts the variants side by side on them.

use outage_lab_dynamodb_events::Event;
use serde::{Deserialize, Serialize};

use super::Run;
use super::window::Clients;
use crate::scenario::Scenario;

/// A run's numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measures {
    /// Lab seconds during which every DNS server answered the endpoint with no address.
    pub endpoint_empty_s: f64,
    /// Client requests that failed during the timeline.
    pub requests_failed: u64,
    /// Client requests that succeeded during the timeline.
    pub requests_ok: u64,
    /// Lookups a client answered from its stale cache (`serve_stale`).
    pub served_stale: u64,
    /// Lab seconds from the first second with a failed request to the last (0: none failed).
    pub outage_s: f64,
    /// Lab seconds the lease manager stayed collapsed after the repair, busy and doing
    /// nothing in time (0 without a lease manager).
    #[serde(default)]
    pub collapsed_s: f64,
    /// Lab seconds from the repair until the leases were back to stay, by themselves (before
    /// any step that sheds the manager's load); `None` when they were not, or without a lease
    /// manager or a repair.
    #[serde(default)]
    pub back_by_itself_s: Option<f64>,
    /// The most leases lost at once (`None` without a lease manager).
    #[serde(default)]
    pub leases_lost: Option<u64>,
    /// Customers' launches refused for insufficient capacity (`None` when nobody launches).
    #[serde(default)]
    pub launches_refused: Option<u64>,
}

impl Measures {
    pub(super) fn of(run: &Run<'_>, scenario: &Scenario) -> Measures {
        let clients = Clients::between(run, run.timeline_ms, run.stopping_ms);
        let failing: Vec<u64> = (run.during())
            .filter(|e| matches!(e.event, Event::ClientStats { failed, .. } if failed > 0))
            .map(|e| e.t_ms)
            .collect();
        let outage_ms = match (failing.first(), failing.last()) {
            // Each count covers the second before it was told.
            (Some(first), Some(last)) => last - first + 1000,
            _ => 0,
        };
        Measures {
            endpoint_empty_s: seconds(all_empty_ms(run)),
            requests_failed: clients.failed,
            requests_ok: clients.ok,
            served_stale: clients.served_stale,
            outage_s: seconds(outage_ms),
            collapsed_s: seconds(super::leases::collapsed_ms(run, scenario)),
            back_by_itself_s: super::leases::back_by_itself_ms(run, scenario).map(seconds),
            leases_lost: super::leases::most_lost(run, scenario),
            launches_refused: super::launches::refused(run, scenario),
        }
    }
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// How long, in lab ms during the timeline, every DNS server answered the endpoint with no
/// address (the probes tell each server's answer when it changes).
fn all_empty_ms(run: &Run<'_>) -> u64 {
    let mut empty = std::collections::BTreeSet::new();
    let (mut since, mut total) = (None, 0);
    for e in run.during() {
        let Event::EndpointProbed {
            server,
            addrs,
            error: None,
            ..
        } = &e.event
        else {
            continue;
        };
        if addrs.is_empty() {
            empty.insert(server.clone());
        } else {
            empty.remove(server);
        }
        match (empty.len() == run.dns_servers, since) {
            (true, None) => since = Some(e.t_ms),
            (false, Some(from)) => {
                total += e.t_ms - from;
                since = None;
            }
            _ => {}
        }
    }
    let end = run
        .stopping_ms
        .min(run.entries.last().map_or(0, |e| e.t_ms));
    total + since.map_or(0, |from| end.saturating_sub(from))
}
