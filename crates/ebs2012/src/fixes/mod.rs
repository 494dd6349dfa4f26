//! The fixes AWS announced after the event, each as something that really happens to the
//! processes, never as a flag the checks read. One module per fix, named as `fixes:` names it:
//! its YAML shape, its validation, what it changes in the processes' configs, what it does
//! during the run, and its row in the report ([`Fix`]).
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
//! command line). Adding a fix is one module here and one line in the list
//! ([`crate::kinds::fix_list!`]) that [`fixes!`] and the fixes' names ([`FixName`]) are made from.

pub mod action;
pub mod runtime;

use outage_lab_proto::report::FixReport;
use serde::Deserialize;

use crate::kinds::FixName;
use outage_lab_engine::located::{Locator, ScenarioError};

/// What the report of a run knows when it describes a fix's setting.
#[derive(Debug, Clone, Copy)]
pub struct RunContext<'a> {
    /// The scenario's `volumes.placement_fill` (what `spare_capacity` changed it from).
    pub placement_fill: f64,
    /// Every fix action of the run: which fix, when (lab ms), what it did.
    pub actions: &'a [(FixName, u64, String)],
    /// Servers on which the aggregate alarm fired.
    pub aggregate_alarm_servers: usize,
}

/// What a scenario has that decides whether a fix can change anything in it.
#[derive(Debug, Clone, Copy)]
pub struct Applicability {
    /// The scenario has customer accounts calling the API.
    pub has_customers: bool,
    /// The scenario runs the built-in agent (no `agent.command`).
    pub built_in_agent: bool,
}

/// What every fix is.
pub trait Fix {
    /// Whether it can change anything in a scenario like this one; if not, the rest of the
    /// sentence `fixes.NAME ...` that says why and what to do.
    fn applies(_scenario: Applicability) -> Result<(), &'static str> {
        Ok(())
    }

    /// Its values, where they were written.
    fn validate(&self, _loc: &Locator<'_>) -> Result<(), ScenarioError> {
        Ok(())
    }

    /// Its setting in words, for the report.
    fn setting(&self, run: RunContext<'_>) -> String;

    /// What one of its run-time actions is called in the report (empty for a fix that acts only
    /// through the configs).
    const ACTIONS: &'static str = "";
}

/// Declares the fixes from [`crate::kinds::fix_list!`]: their modules, the `fixes:` section
/// ([`Fixes`], one optional field per fix), and what goes over all of them.
macro_rules! fixes {
    ($($(#[$doc:meta])* $field:ident: $ty:ident = $variant:ident,)*) => {
        $(pub mod $field;)*

        /// The scenario's `fixes:` section: each field present turns that fix on.
        #[derive(Debug, Clone, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct Fixes {
            $($(#[$doc])* pub $field: Option<$field::$ty>,)*
        }

        impl FixName {
            /// Whether this fix can change anything in such a scenario (and if not, why).
            pub fn applies(self, scenario: Applicability) -> Result<(), &'static str> {
                match self {
                    $(FixName::$variant => <$field::$ty as Fix>::applies(scenario),)*
                }
            }
        }

        impl Fixes {
            /// The fixes that are on, in declaration order.
            pub fn on(&self) -> Vec<FixName> {
                let mut on = Vec::new();
                $(if self.$field.is_some() { on.push(FixName::$variant); })*
                on
            }

            /// Each fix's values, where they were written.
            fn validate_each(&self, loc: &Locator<'_>) -> Result<(), ScenarioError> {
                $(if let Some(fix) = &self.$field { fix.validate(loc)?; })*
                Ok(())
            }

            /// Each fix that is on: its name, its setting in words, what its actions are called.
            fn rows(&self, run: RunContext<'_>) -> Vec<(FixName, String, &'static str)> {
                let mut rows = Vec::new();
                $(if let Some(fix) = &self.$field {
                    rows.push((FixName::$variant, fix.setting(run), <$field::$ty as Fix>::ACTIONS));
                })*
                rows
            }
        }
    };
}

crate::kinds::fix_list!(fixes);

impl FixName {
    /// The fixes that can change anything in such a scenario.
    pub fn applicable(scenario: Applicability) -> Vec<FixName> {
        (Self::ALL.iter().copied())
            .filter(|f| f.applies(scenario).is_ok())
            .collect()
    }
}

impl Fixes {
    /// The agents' retry policy: the scenario's, or the fixed agent's.
    pub fn agent_retry(
        &self,
        scenario: &outage_lab_agent::FleetRetryPolicy,
    ) -> outage_lab_agent::FleetRetryPolicy {
        agent_bounded_retry::agent_retry(self.agent_bounded_retry.as_ref(), scenario)
    }

    /// The API's throttle: the scenario's, or per customer where it would be global.
    pub fn throttle(
        &self,
        scenario: outage_lab_control::api::ThrottleConfig,
    ) -> outage_lab_control::api::ThrottleConfig {
        per_customer_throttling::throttle(self.per_customer_throttling.as_ref(), scenario)
    }

    /// The share of slots filled at placement: the scenario's, or the spare-capacity fix's.
    pub fn placement_fill(&self, scenario: f64) -> f64 {
        spare_capacity::placement_fill(self.spare_capacity.as_ref(), scenario)
    }

    /// Each fix that is on can change something in this scenario, and its values are valid.
    pub fn validate(
        &self,
        scenario: Applicability,
        loc: &Locator<'_>,
    ) -> Result<(), ScenarioError> {
        for fix in self.on() {
            if let Err(why) = fix.applies(scenario) {
                let message = format!("fixes.{fix} {why}");
                return Err(loc.at_path(&[&["fixes", fix.name()]], message));
            }
        }
        self.validate_each(loc)
    }
}

/// What each fix that was on did, for the report: its setting, and its actions counted.
pub fn report(fixes: &Fixes, run: RunContext<'_>) -> Vec<FixReport> {
    let rows = fixes.rows(run);
    (rows.into_iter())
        .map(|(fix, setting, what)| {
            let actions = run.actions.iter().filter(|(f, _, _)| *f == fix);
            let n = actions
                .filter(|(_, _, d)| !d.starts_with("in place"))
                .count() as u64;
            let detail = match (n, what) {
                (0, "") => setting,
                (n, what) => format!("{setting}; {n} {what}"),
            };
            FixReport {
                name: fix.name().to_owned(),
                actions: n,
                detail,
            }
        })
        .collect()
}

/// A share of the whole: finite, above 0, at most 1 where `at_most_one`.
fn check_share(
    loc: &Locator<'_>,
    path: &[&str],
    value: f64,
    expected: &str,
    at_most_one: bool,
) -> Result<(), ScenarioError> {
    let ok = value.is_finite() && value > 0.0 && (!at_most_one || value <= 1.0);
    if ok {
        return Ok(());
    }
    let message = format!("{} is {value}; expected {expected}", path.join("."));
    Err(loc.at_path(&[path], message))
}

/// A duration longer than zero.
fn check_positive(
    loc: &Locator<'_>,
    path: &[&str],
    value: outage_lab_proto::HumanDuration,
) -> Result<(), ScenarioError> {
    if value.get().is_zero() {
        let message = format!("{} must be longer than 0ms", path.join("."));
        return Err(loc.at_path(&[path], message));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_fix_reads_back_from_its_name() {
        assert_eq!(FixName::ALL.len(), FixName::NAMES.len());
        for (fix, name) in FixName::ALL.iter().zip(FixName::NAMES) {
            assert_eq!(fix.name(), *name);
            assert_eq!(FixName::from_name(name), Some(*fix));
        }
        assert_eq!(FixName::from_name("magic"), None);
    }

    #[test]
    fn a_scenario_without_customers_or_with_its_own_agent_gets_only_the_fixes_that_apply() {
        let all = |has_customers, built_in_agent| {
            FixName::applicable(Applicability {
                has_customers,
                built_in_agent,
            })
        };
        assert_eq!(all(true, true), FixName::ALL);
        assert!(!all(false, true).contains(&FixName::PerCustomerThrottling));
        assert!(!all(true, false).contains(&FixName::AgentBoundedRetry));
        assert_eq!(all(false, false).len(), FixName::ALL.len() - 2);
    }

    /// The book's reference table has a row for every fix, as the facilitator's guide has every
    /// question of the workshop (`workshop::narration`).
    #[test]
    fn the_scenarios_chapter_has_a_table_row_for_every_fix() {
        let chapter = include_str!("../../../../docs/src/scenarios.md");
        let first_cells: Vec<&str> = (chapter.lines())
            .filter_map(|line| line.split('|').nth(1))
            .map(str::trim)
            .collect();
        for name in FixName::NAMES {
            let name = format!("`{name}`");
            assert!(
                first_cells.contains(&name.as_str()),
                "docs/src/scenarios.md has no table row for the fix {name}"
            );
        }
    }
}
