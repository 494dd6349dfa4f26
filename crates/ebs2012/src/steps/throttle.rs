//! `throttle: { at, policy, rate, burst }`: the control plane's API switches its throttling
//! policy, as AWS did in the middle of the 2012 event to protect the control plane from the
//! customers' recovery storm. `rate` and `burst` default to the scenario's `api.throttle`.
//! With the `per_customer_throttling` fix on, a `global` switch becomes `per_customer`.

use outage_lab_control::api::{Policy, ThrottleConfig};
use outage_lab_proto::HumanDuration;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{TimelineContext, TimelineStep};
use crate::fleet_handle::FleetHandle;
use outage_lab_engine::error::HarnessError;
use outage_lab_engine::located::ScenarioError;

/// Switch the API's throttling policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Throttle {
    /// When, from the moment the fleet is up.
    pub at: Spanned<HumanDuration>,
    /// `none`, `global` or `per_customer`.
    pub policy: Policy,
    /// Calls per second the region admits (default: `api.throttle.rate`).
    #[serde(default)]
    pub rate: Option<f64>,
    /// Calls the region admits at once (default: `api.throttle.burst`).
    #[serde(default)]
    pub burst: Option<u32>,
}

impl Throttle {
    /// The policy this step puts in force, given the scenario's `api.throttle`.
    pub fn config(&self, scenario: ThrottleConfig) -> ThrottleConfig {
        ThrottleConfig {
            policy: self.policy,
            rate: self.rate.unwrap_or(scenario.rate),
            burst: self.burst.unwrap_or(scenario.burst),
        }
    }
}

impl TimelineStep for Throttle {
    fn at(&self) -> &Spanned<HumanDuration> {
        &self.at
    }

    fn validate(&self, t: &mut TimelineContext<'_>) -> Result<(), ScenarioError> {
        let probe = self.config(ThrottleConfig::default());
        probe
            .validate()
            .map_err(|e| t.loc.at(&self.at, format!("throttle: {e}")))
    }

    async fn inject(&self, fleet: &mut impl FleetHandle<'_>) -> Result<String, HarnessError> {
        let now = fleet
            .set_throttle(self.config(fleet.api_throttle()))
            .await?;
        Ok(format!(
            "the API's throttle is now {} ({} calls/s, burst {}{})",
            now.policy.name(),
            now.rate,
            now.burst,
            if now.policy == Policy::PerCustomer {
                ", divided evenly among the accounts"
            } else {
                ""
            }
        ))
    }
}
