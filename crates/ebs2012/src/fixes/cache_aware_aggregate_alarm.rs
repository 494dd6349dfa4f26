//! `cache_aware_aggregate_alarm: { threshold }`: better general monitoring. The per-server
//! aggregate alarm counts memory in use minus what the storage cache could give back.

use serde::Deserialize;

use super::{Fix, RunContext};
use outage_lab_engine::located::{Locator, ScenarioError};

/// `cache_aware_aggregate_alarm: { threshold }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheAwareAggregateAlarm {
    /// Fire when a server's memory in use minus its storage cache exceeds this share of the
    /// budget (for the aggregate alarm's `for_samples` sweeps).
    pub threshold: f64,
}

impl Default for CacheAwareAggregateAlarm {
    fn default() -> Self {
        // Without its cache a healthy server uses about a third of its budget (an idle agent, a
        // storage process and its replicas); well above that is memory nobody accounted for.
        Self { threshold: 0.6 }
    }
}

impl Fix for CacheAwareAggregateAlarm {
    fn validate(&self, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        let path = ["fixes", "cache_aware_aggregate_alarm", "threshold"];
        let expected = "a positive share of the memory budget";
        super::check_share(loc, &path, self.threshold, expected, false)
    }

    fn setting(&self, run: RunContext<'_>) -> String {
        let fired = run.aggregate_alarm_servers;
        format!(
            "aggregate alarm at {} of the budget, net of the storage cache; fired on {fired} servers",
            self.threshold
        )
    }
}
