//! The timeline's vocabulary: one module per step.
//!
//! A step owns everything about itself, in the spirit of one module per command: its YAML shape
//! (the struct), what it needs of the rest of the scenario ([`TimelineStep::validate`], with
//! `file:line:column`), what it does to the running fleet ([`TimelineStep::inject`], which returns
//! the evidence the journal records), and the checks that read that evidence afterwards
//! ([`TimelineStep::checks`]: a fault that silently did nothing must fail the run).
//!
//! The driver knows no step by name: it waits until each step's time, calls `inject` and
//! journals what it returns. Adding a step is one new file here and one line in the list
//! ([`crate::kinds::step_list!`]) that [`steps!`] and the steps' names ([`StepKind`]) are made
//! from.

mod dns_fault;
mod dns_repair;
pub mod dns_update;
mod kill;
mod replace_collector;
mod restart;
pub mod select;
pub mod throttle;

use outage_lab_proto::HumanDuration;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::check::Check;
use crate::fleet_handle::FleetHandle;
use crate::kinds::StepKind;
use outage_lab_engine::error::HarnessError;
use outage_lab_engine::located::{Locator, ScenarioError};

/// What every step is: a time, a validation, an injection and its checks.
// Only used through the `Step` enum's static dispatch, never as `dyn`, so the future's `Send`
// bound the lint warns about does not matter (the harness runs on one thread).
#[allow(async_fn_in_trait)]
pub trait TimelineStep {
    /// When it happens, from the moment the fleet is up.
    fn at(&self) -> &Spanned<HumanDuration>;

    /// Checks what only the whole scenario can tell: the names it refers to, what must come
    /// before it. Time order and the run's duration are checked for every step by the timeline.
    fn validate(&self, timeline: &mut TimelineContext<'_>) -> Result<(), ScenarioError>;

    /// Does it to the running fleet; returns what happened, with the evidence, in one line.
    async fn inject(&self, fleet: &mut impl FleetHandle<'_>) -> Result<String, HarnessError>;

    /// The checks every run with this step gets, whatever `expect:` says.
    fn checks(&self) -> Vec<Check<'_>> {
        Vec::new()
    }
}

/// What the steps of one timeline learn about each other while they are validated in order.
#[derive(Debug)]
pub struct TimelineContext<'a> {
    /// Where values were written, for messages.
    pub loc: &'a Locator<'a>,
    /// The DNS servers the scenario names.
    pub dns_names: Vec<&'a str>,
    /// Storage servers in the fleet.
    pub servers: usize,
    /// A `replace_collector` came earlier.
    pub collector_replaced: bool,
    /// A `dns_update` came earlier.
    pub dns_updated: bool,
}

impl TimelineContext<'_> {
    /// Checks the DNS servers a step lists in `field`: each one of the scenario's, none twice.
    pub fn check_dns_servers(
        &self,
        listed: &[Spanned<String>],
        field: &str,
    ) -> Result<(), ScenarioError> {
        let mut seen = std::collections::BTreeSet::new();
        for target in listed {
            if !self.dns_names.contains(&target.value.as_str()) {
                let known = self.dns_names.join(", ");
                return Err(self.loc.at(
                    target,
                    format!(
                        "unknown DNS server {:?} in {field}; expected one of: {known}",
                        target.value
                    ),
                ));
            }
            if !seen.insert(target.value.as_str()) {
                let twice = format!("DNS server {:?} listed twice", target.value);
                return Err(self.loc.at(target, twice));
            }
        }
        Ok(())
    }
}

/// Declares the vocabulary from [`crate::kinds::step_list!`]: the `Step` enum the scenario
/// parses, and the dispatch from it to each step's module.
macro_rules! steps {
    ($($(#[$doc:meta])* $variant:ident($ty:ty) = $name:literal,)*) => {
        /// One timeline step, as written in the scenario (`- dns_update: { at: 4s, ... }`).
        #[derive(Debug, Clone, Deserialize)]
        pub enum Step {
            $($(#[$doc])* #[serde(rename = $name)] $variant($ty),)*
        }

        impl Step {
            /// Which step this is.
            pub fn kind(&self) -> StepKind {
                match self {
                    $(Step::$variant(_) => StepKind::$variant,)*
                }
            }

            /// When it happens.
            pub fn at(&self) -> &Spanned<HumanDuration> {
                match self {
                    $(Step::$variant(s) => s.at(),)*
                }
            }

            fn validate_own(&self, t: &mut TimelineContext<'_>) -> Result<(), ScenarioError> {
                match self {
                    $(Step::$variant(s) => s.validate(t),)*
                }
            }

            /// Does it to the running fleet; returns the evidence.
            pub async fn inject(&self, fleet: &mut impl FleetHandle<'_>) -> Result<String, HarnessError> {
                match self {
                    $(Step::$variant(s) => s.inject(fleet).await,)*
                }
            }

            /// The checks this step adds to the run.
            pub fn checks(&self) -> Vec<Check<'_>> {
                match self {
                    $(Step::$variant(s) => s.checks(),)*
                }
            }
        }
    };
}

crate::kinds::step_list!(steps);

/// Validates a whole timeline: each step in time order and within `duration`, then what each
/// step needs of the others.
pub fn validate_timeline(
    steps: &[Step],
    duration: &Spanned<HumanDuration>,
    t: &mut TimelineContext<'_>,
) -> Result<(), ScenarioError> {
    let mut last = std::time::Duration::ZERO;
    for step in steps {
        let at = step.at();
        let name = step.kind().name();
        if at.value.get() < last {
            return Err(t.loc.at(
                at,
                format!(
                    "{name} at {} comes before the previous step ({}); expected steps in time order",
                    at.value,
                    HumanDuration(last)
                ),
            ));
        }
        if at.value.get() > duration.value.get() {
            return Err(t.loc.at(
                at,
                format!(
                    "{name} at {} is after the end of the run (duration {})",
                    at.value, duration.value
                ),
            ));
        }
        last = at.value.get();
        step.validate_own(t)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::StepKind;

    /// The book's reference table has a row for every step, as the facilitator's guide has every
    /// question of the workshop (`workshop::narration`).
    #[test]
    fn the_scenarios_chapter_has_a_table_row_for_every_step() {
        let chapter = include_str!("../../../../docs/src/scenarios.md");
        let first_cells: Vec<&str> = (chapter.lines())
            .filter_map(|line| line.split('|').nth(1))
            .map(str::trim)
            .collect();
        for kind in StepKind::ALL {
            let name = format!("`{}`", kind.name());
            assert!(
                first_cells.contains(&name.as_str()),
                "docs/src/scenarios.md has no table row for the step {name}"
            );
        }
    }
}
