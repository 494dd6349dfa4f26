//! `spare_capacity: { placement_fill }`: more careful capacity planning. Control fills this
//! share of the replica slots at placement, so the rest is room to fail over into.

use serde::Deserialize;

use super::{Fix, RunContext};
use outage_lab_engine::located::{Locator, ScenarioError};

/// `spare_capacity: { placement_fill }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpareCapacity {
    /// Share of all slots filled at placement: the rest is room to fail over into.
    pub placement_fill: f64,
}

impl Default for SpareCapacity {
    fn default() -> Self {
        // 3 of 8 slots: the spare-capacity variant of the 2012 scenario.
        Self {
            placement_fill: 0.375,
        }
    }
}

impl Fix for SpareCapacity {
    fn validate(&self, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        let path = ["fixes", "spare_capacity", "placement_fill"];
        super::check_share(loc, &path, self.placement_fill, "a share in (0, 1]", true)
    }

    fn setting(&self, run: RunContext<'_>) -> String {
        format!(
            "placement_fill {} instead of {}",
            self.placement_fill, run.placement_fill
        )
    }
}

/// The share of slots filled at placement: the scenario's, or the fix's when it is on.
pub fn placement_fill(fix: Option<&SpareCapacity>, scenario: f64) -> f64 {
    fix.map_or(scenario, |fix| fix.placement_fill)
}
