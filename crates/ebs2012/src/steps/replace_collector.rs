//! `replace_collector: { at }`: the data-collection server's hardware fails. The old collector
//! process is killed at once (its address goes dead) and a replacement starts on a new address
//! with the same port. DNS still names the old address until a `dns_update`.

use std::net::SocketAddr;

use outage_lab_proto::HumanDuration;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{TimelineContext, TimelineStep};
use crate::fleet_handle::FleetHandle;
use crate::names::{Generation, ProcessName};
use outage_lab_engine::error::HarnessError;
use outage_lab_engine::located::ScenarioError;

/// The collector swap of the incident.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplaceCollector {
    /// When, from the moment the fleet is up.
    pub at: Spanned<HumanDuration>,
}

impl TimelineStep for ReplaceCollector {
    fn at(&self) -> &Spanned<HumanDuration> {
        &self.at
    }

    fn validate(&self, t: &mut TimelineContext<'_>) -> Result<(), ScenarioError> {
        if t.collector_replaced {
            return Err(t.loc.at(
                &self.at,
                "the collector is replaced twice; only one replacement is supported".into(),
            ));
        }
        t.collector_replaced = true;
        Ok(())
    }

    async fn inject(&self, fleet: &mut impl FleetHandle<'_>) -> Result<String, HarnessError> {
        let port = fleet.collector_port();
        let listen = SocketAddr::new(fleet.plan().collector_new.into(), port);
        let new = fleet.start_collector(Generation::New, listen).await?;
        // A hardware failure does not shut down cleanly: SIGKILL at once.
        fleet
            .kill(&[ProcessName::Collector(Generation::Old)])
            .await?;
        Ok(format!(
            "collector-old ({}:{port}) failed (SIGKILL); replacement collector-new serves on {new}; DNS still names the old address",
            fleet.plan().collector_old
        ))
    }
}
