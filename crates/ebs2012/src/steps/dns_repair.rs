//! `dns_repair: { at }`: the root cause is found and the collector's record is fixed on every
//! DNS server.

use outage_lab_ebs_events::COLLECTOR_NAME;
use outage_lab_proto::HumanDuration;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{TimelineContext, TimelineStep};
use crate::fleet_handle::FleetHandle;
use outage_lab_engine::error::HarnessError;
use outage_lab_engine::located::ScenarioError;

/// The repair.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsRepair {
    /// When, from the moment the fleet is up.
    pub at: Spanned<HumanDuration>,
}

impl TimelineStep for DnsRepair {
    fn at(&self) -> &Spanned<HumanDuration> {
        &self.at
    }

    fn validate(&self, t: &mut TimelineContext<'_>) -> Result<(), ScenarioError> {
        if !t.collector_replaced {
            return Err(t.loc.at(
                &self.at,
                "dns_repair comes before replace_collector; there is nothing to repair".into(),
            ));
        }
        Ok(())
    }

    async fn inject(&self, fleet: &mut impl FleetHandle<'_>) -> Result<String, HarnessError> {
        let plan = fleet.plan();
        for dns in &plan.dns {
            fleet
                .point_collector_record(&dns.name, "dns_repair")
                .await?;
        }
        Ok(format!(
            "{COLLECTOR_NAME} -> {} on every DNS server",
            plan.collector_new
        ))
    }
}
