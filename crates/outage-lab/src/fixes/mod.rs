//! The fixes AWS announced after the event, each as something that really happens to the
//! processes, never as a flag the checks read. One module per fix: its YAML shape, its
//! validation, and its mechanism.
//!
//! Some fixes change what a process is started with (`agent_bounded_retry`: the agent's retry
//! mode; `spare_capacity`: control's placement; `cache_aware_aggregate_alarm`: the watchdog's
//! alarm; `agent_memory_limit`: a kernel limit on each agent). Others act during the run
//! ([`runtime::FixRuntime`]): `leak_alarm_action` restarts an agent its leak alarm fired on,
//! `dns_verification` queries every DNS server and re-pushes a record that did not propagate,
//! `agent_memory_limit` restarts an agent the kernel killed. Every action is journaled as a
//! `fix_applied` event, which the report counts.
//!
//! Every fix is off unless the scenario's `fixes:` names it (`--fix NAME` does that from the
//! command line).

pub mod action;
pub mod agent_memory_limit;
pub mod dns_verification;
pub mod runtime;

use outage_lab_agent::FleetRetryPolicy;
use outage_lab_control::api::{Policy, ThrottleConfig};
use outage_lab_proto::HumanDuration;
use outage_lab_proto::report::FixReport;
use serde::Deserialize;

use self::agent_memory_limit::AgentMemoryLimit;
use self::dns_verification::DnsVerification;
use crate::harness::state::RunState;
use crate::scenario::located::{Locator, ScenarioError};
use crate::scenario::sections::VolumeSettings;

/// The scenario's `fixes:` section: each field present turns that fix on.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixes {
    /// Per-process monitoring with an action: when the leak alarm fires on an agent, the agent
    /// is restarted `reaction` later (a page, a person, a restart).
    pub leak_alarm_action: Option<LeakAlarmAction>,
    /// Resource limits on storage servers: a kernel-enforced memory limit on each agent, which
    /// is restarted when the kernel kills it, as a service manager would.
    pub agent_memory_limit: Option<AgentMemoryLimit>,
    /// DNS changes that propagate reliably: every DNS server is asked for the record after each
    /// change, and a server still answering the old address gets the record again.
    pub dns_verification: Option<DnsVerification>,
    /// The agent fixed: bounded retry state and backoff (`agent.retry` becomes `mode: fixed`).
    pub agent_bounded_retry: Option<AgentBoundedRetry>,
    /// More careful capacity planning: this share of slots filled at placement instead.
    pub spare_capacity: Option<SpareCapacity>,
    /// Better general monitoring: the per-server aggregate alarm counts memory in use minus what
    /// the storage cache could give back.
    pub cache_aware_aggregate_alarm: Option<CacheAwareAggregateAlarm>,
    /// Throttling per customer: wherever the API's throttle would be region-wide (`global`), it
    /// is `per_customer` instead, so one customer's storm cannot use up everyone's allowance.
    pub per_customer_throttling: Option<PerCustomerThrottling>,
}

/// `per_customer_throttling: {}`: no settings; the region's rate and burst are divided evenly.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerCustomerThrottling {}

impl Fixes {
    /// Every fix's name, as `fixes:` and `--fix` write it.
    pub const NAMES: &[&str] = &[
        "leak_alarm_action",
        "agent_memory_limit",
        "dns_verification",
        "agent_bounded_retry",
        "spare_capacity",
        "cache_aware_aggregate_alarm",
        "per_customer_throttling",
    ];

    /// The names of the fixes that are on, in [`Fixes::NAMES`] order.
    pub fn on(&self) -> Vec<&'static str> {
        let on = [
            self.leak_alarm_action.is_some(),
            self.agent_memory_limit.is_some(),
            self.dns_verification.is_some(),
            self.agent_bounded_retry.is_some(),
            self.spare_capacity.is_some(),
            self.cache_aware_aggregate_alarm.is_some(),
            self.per_customer_throttling.is_some(),
        ];
        (Self::NAMES.iter().zip(on))
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect()
    }

    /// Each fix's values, where they were written.
    pub fn validate(&self, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        let positive = |path: &[&str], d: HumanDuration| {
            if d.get().is_zero() {
                Err(loc.at_path(
                    &[path],
                    format!("{} must be longer than 0ms", path.join(".")),
                ))
            } else {
                Ok(())
            }
        };
        if let Some(fix) = &self.leak_alarm_action {
            positive(&["fixes", "leak_alarm_action", "reaction"], fix.reaction)?;
        }
        if let Some(fix) = &self.dns_verification {
            positive(&["fixes", "dns_verification", "interval"], fix.interval)?;
        }
        if let Some(fix) = &self.agent_memory_limit {
            fix.validate(loc)?;
        }
        if let Some(fix) = &self.spare_capacity {
            let f = fix.placement_fill;
            if !(f > 0.0 && f <= 1.0) {
                return Err(loc.at_path(
                    &[&["fixes", "spare_capacity", "placement_fill"]],
                    format!(
                        "fixes.spare_capacity.placement_fill is {f}; expected a share in (0, 1]"
                    ),
                ));
            }
        }
        if let Some(fix) = &self.cache_aware_aggregate_alarm {
            let t = fix.threshold;
            if !(t.is_finite() && t > 0.0) {
                return Err(loc.at_path(
                    &[&["fixes", "cache_aware_aggregate_alarm", "threshold"]],
                    format!("fixes.cache_aware_aggregate_alarm.threshold is {t}; expected a positive share of the memory budget"),
                ));
            }
        }
        Ok(())
    }

    /// The agents' retry policy: the scenario's, or the fixed agent's.
    pub fn agent_retry(&self, scenario: &FleetRetryPolicy) -> FleetRetryPolicy {
        match self.agent_bounded_retry {
            Some(_) => FleetRetryPolicy::fixed(),
            None => scenario.clone(),
        }
    }

    /// The API's throttle: the scenario's, or per customer where it would be global.
    pub fn throttle(&self, scenario: ThrottleConfig) -> ThrottleConfig {
        match (&self.per_customer_throttling, scenario.policy) {
            (Some(_), Policy::Global) => ThrottleConfig {
                policy: Policy::PerCustomer,
                ..scenario
            },
            _ => scenario,
        }
    }

    /// The fixes that can change anything in a scenario with or without customer accounts and
    /// the built-in agent: `per_customer_throttling` needs accounts, `agent_bounded_retry` the
    /// built-in agent; every other fix applies to any scenario.
    pub fn applicable(has_customers: bool, built_in_agent: bool) -> Vec<&'static str> {
        (Self::NAMES.iter().copied())
            .filter(|f| *f != "per_customer_throttling" || has_customers)
            .filter(|f| *f != "agent_bounded_retry" || built_in_agent)
            .collect()
    }

    /// The share of slots filled at placement: the scenario's, or the spare-capacity fix's.
    pub fn placement_fill(&self, scenario: f64) -> f64 {
        self.spare_capacity
            .as_ref()
            .map_or(scenario, |fix| fix.placement_fill)
    }
}

/// What each fix that was on did, for the report: its setting, and its actions counted.
pub fn report(fixes: &Fixes, volumes: &VolumeSettings, state: &RunState) -> Vec<FixReport> {
    let acted = |name: &str| -> Vec<&(String, u64, String)> {
        (state.fix_actions.iter())
            .filter(|(f, _, _)| f == name)
            .collect()
    };
    let mut out = Vec::new();
    let mut add = |name: &str, setting: String, what: &str| {
        let actions = acted(name);
        let setup = (actions.iter())
            .filter(|(_, _, d)| d.starts_with("in place"))
            .count();
        let n = (actions.len() - setup) as u64;
        let detail = match (n, what) {
            (0, "") => setting,
            (n, what) => format!("{setting}; {n} {what}"),
        };
        out.push(FixReport {
            name: name.to_owned(),
            actions: n,
            detail,
        });
    };
    if let Some(f) = &fixes.leak_alarm_action {
        add(
            "leak_alarm_action",
            format!("reaction {}", f.reaction),
            "agent restarts after a leak alarm",
        );
    }
    if let Some(f) = &fixes.agent_memory_limit {
        add(
            "agent_memory_limit",
            format!("limit {} per agent", f.limit),
            "agents killed at the limit and restarted",
        );
    }
    if let Some(f) = &fixes.dns_verification {
        add(
            "dns_verification",
            format!("every {}", f.interval),
            "stale answers found and the record pushed again",
        );
    }
    if fixes.agent_bounded_retry.is_some() {
        add(
            "agent_bounded_retry",
            "agents retry with mode: fixed (bounded state, backoff)".into(),
            "",
        );
    }
    if let Some(f) = &fixes.spare_capacity {
        let setting = format!(
            "placement_fill {} instead of {}",
            f.placement_fill, volumes.placement_fill
        );
        add("spare_capacity", setting, "");
    }
    if let Some(f) = &fixes.cache_aware_aggregate_alarm {
        let fired = state
            .servers
            .values()
            .filter(|s| s.aggregate_at_ms.is_some())
            .count();
        let setting = format!(
            "aggregate alarm at {} of the budget, net of the storage cache; fired on {fired} servers",
            f.threshold
        );
        add("cache_aware_aggregate_alarm", setting, "");
    }
    if fixes.per_customer_throttling.is_some() {
        add(
            "per_customer_throttling",
            "the API's region-wide throttle is divided evenly into a bucket per customer".into(),
            "",
        );
    }
    out
}

/// `leak_alarm_action: { reaction }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeakAlarmAction {
    /// From the alarm to the restart: the page-to-action time.
    pub reaction: HumanDuration,
}

impl Default for LeakAlarmAction {
    fn default() -> Self {
        Self {
            reaction: HumanDuration::secs(2),
        }
    }
}

/// `agent_bounded_retry: {}`: the agent's own `mode: fixed` with its defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentBoundedRetry {}

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

#[cfg(test)]
mod tests {
    use super::Fixes;

    /// The book's reference table has a row for every fix, as the facilitator's guide has every
    /// question of the workshop (`workshop::narration`).
    #[test]
    fn the_scenarios_chapter_has_a_table_row_for_every_fix() {
        let chapter = include_str!("../../../../docs/src/scenarios.md");
        let first_cells: Vec<&str> = (chapter.lines())
            .filter_map(|line| line.split('|').nth(1))
            .map(str::trim)
            .collect();
        for name in Fixes::NAMES {
            let name = format!("`{name}`");
            assert!(
                first_cells.contains(&name.as_str()),
                "docs/src/scenarios.md has no table row for the fix {name}"
            );
        }
    }
}
