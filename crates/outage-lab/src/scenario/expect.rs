//! The scenario's `expect:` section: what must hold at the end of a run. Every field present is
//! one row of the verdict table; `crate::checks::expect` judges each.

use outage_lab_proto::{ByteSize, HumanDuration};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::located::{Locator, ScenarioError};

/// What must hold at the end of the run. Every field present is checked and reported; absent
/// fields are not checked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// Fraction of servers whose agent is behind a DNS server the update missed, as observed
    /// (agents that really kept resolving the old address). Holds if the observed count is
    /// this fraction of the fleet rounded to the nearest server.
    pub stale_share: Option<Spanned<f64>>,
    /// Every stale agent's resident memory grows at least this much above its level before the
    /// first fault.
    pub stale_agents_grow_at_least: Option<ByteSize>,
    /// No stale agent's resident memory grows more than this (the fixed agent: no leak).
    pub stale_agents_grow_at_most: Option<ByteSize>,
    /// No fresh agent's resident memory grows more than this above its level before the first
    /// fault. (With no `dns_update`, every agent counts as fresh.)
    pub fresh_agents_grow_at_most: Option<ByteSize>,
    /// Which processes the leak alarm must fire on.
    pub leak_alarm: Option<LeakAlarmExpectation>,
    /// What the 2012 aggregate alarm may do.
    pub aggregate_alarm: Option<AggregateAlarmExpectation>,
    /// After a restart, each restarted agent's last resident memory is within this of its level
    /// before the first fault.
    pub memory_recovers_within: Option<ByteSize>,
    /// Whether volumes get stuck, and when.
    pub stuck_volumes: Option<StuckVolumesExpectation>,
    /// Whether failovers run out of healthy servers with spare capacity.
    pub failover_capacity: Option<FailoverCapacityExpectation>,
    /// Every volume is healthy again within this of the last timeline step, and none is stuck
    /// at the end.
    pub volumes_recover_within: Option<Spanned<HumanDuration>>,
}

/// Whether volumes get stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StuckVolumesExpectation {
    /// Some do, only on stale servers or servers that took failover load from them, and on every
    /// stale server the leak alarm fired before its first stuck volume.
    AfterLeakAlarm,
    /// None does.
    None,
}

/// Whether failovers find capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailoverCapacityExpectation {
    /// At least one failover finds no healthy server with a free slot.
    RunsOut,
    /// Every failover finds one.
    Suffices,
}

/// Where the leak alarm must fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeakAlarmExpectation {
    /// On every stale agent, and on no fresh agent and no storage process.
    ExactlyStaleAgents,
    /// On nothing.
    None,
}

/// What the 2012 aggregate alarm may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateAlarmExpectation {
    /// It does not fire before the first leak alarm (the incident: it stayed silent).
    NotBeforeLeakAlarm,
    /// It never fires.
    Never,
}

impl Expectations {
    /// Shares must be shares.
    pub fn validate(&self, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        if let Some(share) = (self.stale_share.as_ref()).filter(|s| !(0.0..=1.0).contains(&s.value))
        {
            return Err(loc.at(
                share,
                format!(
                    "expect.stale_share is {}; expected a fraction in [0, 1]",
                    share.value
                ),
            ));
        }
        Ok(())
    }
}
