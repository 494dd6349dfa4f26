//! The clients' counts over a window of the run, summed from their `client_stats` (one per
//! client per second, counting the second before it).

use outage_lab_dynamodb_events::Event;

use super::Run;

/// Every client's requests and lookups, summed.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Clients {
    pub ok: u64,
    pub failed: u64,
    pub lookups_failed: u64,
    pub served_stale: u64,
}

impl Clients {
    /// The counts told after `from_ms` and up to `until_ms`.
    pub(super) fn between(run: &Run<'_>, from_ms: u64, until_ms: u64) -> Clients {
        let mut sum = Clients::default();
        for e in run
            .during()
            .filter(|e| e.t_ms > from_ms && e.t_ms <= until_ms)
        {
            if let Event::ClientStats {
                ok,
                failed,
                lookups_failed,
                served_stale,
                ..
            } = &e.event
            {
                sum.ok += ok;
                sum.failed += failed;
                sum.lookups_failed += lookups_failed;
                sum.served_stale += served_stale;
            }
        }
        sum
    }

    /// When the last second with a failed request was told, after `from_ms`.
    pub(super) fn last_failure(run: &Run<'_>, from_ms: u64) -> Option<u64> {
        (run.during().filter(|e| e.t_ms > from_ms))
            .filter(|e| matches!(e.event, Event::ClientStats { failed, .. } if failed > 0))
            .map(|e| e.t_ms)
            .last()
    }
}
