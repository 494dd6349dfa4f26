//! `restart: { at, agents }`: agents are stopped (SIGTERM) and started again, which frees
//! whatever they leaked. A restarted agent takes its old metrics address again and the watchdog
//! is told its new pid.

use outage_lab_proto::HumanDuration;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::select::Servers;
use super::{TimelineContext, TimelineStep};
use crate::fleet_handle::FleetHandle;
use outage_lab_engine::error::HarnessError;
use outage_lab_engine::located::ScenarioError;

/// Restart agents.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    /// When, from the moment the fleet is up.
    pub at: Spanned<HumanDuration>,
    /// Whose agents: `stale` (behind DNS servers the update missed), `fresh`, `all`, or a list
    /// of server ids.
    pub agents: Servers,
}

impl TimelineStep for Restart {
    fn at(&self) -> &Spanned<HumanDuration> {
        &self.at
    }

    fn validate(&self, t: &mut TimelineContext<'_>) -> Result<(), ScenarioError> {
        self.agents.validate(t.servers, t.loc)
    }

    async fn inject(&self, fleet: &mut impl FleetHandle<'_>) -> Result<String, HarnessError> {
        let servers = self.agents.pick(fleet.plan(), None);
        fleet.restart_agents(&servers).await?;
        let which = match &self.agents {
            Servers::All => "(all)".to_owned(),
            other => other.to_string(),
        };
        Ok(format!(
            "restarted {} {which} agents; whatever they leaked is freed",
            servers.len()
        ))
    }
}
