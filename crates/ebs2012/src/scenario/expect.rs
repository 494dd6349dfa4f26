//! The scenario's `expect:` section: what must hold at the end of a run. Every field present is
//! one row of the verdict table; `crate::checks::expect` judges each.

use outage_lab_proto::{ByteSize, HumanDuration};
use serde::Deserialize;
use serde_saphyr::Spanned;

use outage_lab_engine::located::{Locator, ScenarioError};

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
    /// Every customer none of whose volumes got stuck (a bystander) gets at least this share of
    /// its API calls answered (`0.99` or `99%`).
    pub bystander_api_success_at_least: Option<Spanned<Share>>,
    /// Every customer with a stuck volume has a working volume again (a replacement attached,
    /// or the volume healthy) within this of first seeing it stuck.
    pub affected_customers_recover_within: Option<Spanned<HumanDuration>>,
    /// Whose API calls the throttling policy refused.
    pub api_calls_throttled: Option<ThrottledExpectation>,
}

impl Expectations {
    /// The expectations that judge customer accounts, by name, for those present.
    pub fn about_customers(&self) -> Vec<&'static str> {
        [
            (
                "bystander_api_success_at_least",
                self.bystander_api_success_at_least.is_some(),
            ),
            (
                "affected_customers_recover_within",
                self.affected_customers_recover_within.is_some(),
            ),
            ("api_calls_throttled", self.api_calls_throttled.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect()
    }
}

/// Whose API calls the throttle refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThrottledExpectation {
    /// Some bystander's calls were throttled (the 2012 policy's side effect).
    BystandersHit,
    /// The throttle refused calls, and only affected customers' calls: a run where nothing was
    /// throttled (no throttle, no storm) does not hold, so the check cannot pass vacuously.
    OnlyAffected,
}

/// A share in [0, 1], written as a number (`0.99`) or a percentage (`"99%"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share(pub f64);

impl<'de> Deserialize<'de> for Share {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(x) => Ok(Share(x)),
            Raw::Text(text) => (text.trim().strip_suffix('%'))
                .and_then(|n| n.trim().parse::<f64>().ok())
                .map(|p| Share(p / 100.0))
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "{text:?} is not a share; expected a number in [0, 1] or a percentage such as \"99%\""
                    ))
                }),
        }
    }
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
        if let Some(share) = (self.bystander_api_success_at_least.as_ref())
            .filter(|s| !(0.0..=1.0).contains(&s.value.0))
        {
            return Err(loc.at(
                share,
                format!(
                    "expect.bystander_api_success_at_least is {}; expected a share in [0, 1] (or 0% to 100%)",
                    share.value.0
                ),
            ));
        }
        Ok(())
    }
}
