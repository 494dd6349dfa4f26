//! `dns_fault: { at, answer, by, dns_servers }`: DNS breaks the collector's name the ways DNS
//! breaks in real outages, on the DNS servers listed (all when absent), for the built-in agents
//! and for any agent under test alike:
//!
//! - `empty`: the name keeps no address; a query gets NOERROR and no answer (NODATA), which a
//!   resolver remembers for the zone's negative-caching TTL;
//! - `nxdomain`: the name is taken out of the zone;
//! - `servfail`: every query for it fails, until `answer: normal`;
//! - `delay`: every answer comes `by` late (at most a minute), until `answer: normal`;
//! - `normal`: the `servfail` or `delay` ends (the records are as they were; `dns_repair`
//!   restores an emptied or removed name).
//!
//! Its check, `dns_fault_took_effect`, reads what each DNS server told: that it made the change
//! (`normal`, a repair, brings none).

use outage_lab_ebs_events::COLLECTOR_NAME;
use outage_lab_proto::HumanDuration;
use outage_lab_proto::report::ExpectationResult;
use outage_lab_proto::wire::{DnsChange, DnsFault};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{TimelineContext, TimelineStep};
use crate::check::{Check, CheckInput, first_few, result};
use crate::fleet_handle::FleetHandle;
use crate::kinds::StepKind;
use outage_lab_engine::error::HarnessError;
use outage_lab_engine::located::ScenarioError;

/// How the listed DNS servers answer the collector's name from `at` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// NOERROR and no address (NODATA).
    Empty,
    /// NXDOMAIN.
    Nxdomain,
    /// SERVFAIL.
    Servfail,
    /// The answer, `by` late.
    Delay,
    /// A `servfail` or `delay` ends.
    Normal,
}

/// A DNS fault on some DNS servers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsFaultStep {
    /// When, from the moment the fleet is up.
    pub at: Spanned<HumanDuration>,
    /// How the name is answered from then on.
    pub answer: Spanned<Answer>,
    /// How late each answer comes (`answer: delay` only).
    #[serde(default)]
    pub by: Option<Spanned<HumanDuration>>,
    /// The DNS servers it happens on [default: every one].
    #[serde(default)]
    pub dns_servers: Option<Vec<Spanned<String>>>,
}

impl DnsFaultStep {
    /// The change each listed DNS server makes.
    fn change(&self) -> DnsChange {
        match self.answer.value {
            Answer::Empty => DnsChange::Set(Vec::new()),
            Answer::Nxdomain => DnsChange::Remove,
            Answer::Servfail => DnsChange::Fault(DnsFault::Servfail),
            Answer::Delay => DnsChange::Fault(DnsFault::Delay {
                by: self
                    .by
                    .as_ref()
                    .map_or_else(HumanDuration::default, |b| b.value),
            }),
            Answer::Normal => DnsChange::Unfault,
        }
    }

    /// The DNS servers it happens on, of `all`.
    fn targets<'a>(&'a self, all: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
        match &self.dns_servers {
            Some(listed) => listed.iter().map(|n| n.value.as_str()).collect(),
            None => all.collect(),
        }
    }

    fn validate_by(&self, t: &TimelineContext<'_>) -> Result<(), ScenarioError> {
        match (&self.by, self.answer.value) {
            (None, Answer::Delay) => Err(t.loc.at(
                &self.answer,
                "dns_fault answer delay needs `by`, how late each answer comes (e.g. by: 2s)"
                    .into(),
            )),
            (Some(by), Answer::Delay) if by.value.0 > outage_lab_dns::MAX_FAULT_DELAY => {
                let max = outage_lab_dns::MAX_FAULT_DELAY.as_secs();
                Err(t
                    .loc
                    .at(by, format!("dns_fault.by is {}; at most {max}s", by.value)))
            }
            (Some(by), answer) if answer != Answer::Delay => Err(t
                .loc
                .at(by, "dns_fault.by is only for answer: delay".into())),
            _ => Ok(()),
        }
    }
}

impl TimelineStep for DnsFaultStep {
    fn at(&self) -> &Spanned<HumanDuration> {
        &self.at
    }

    fn validate(&self, t: &mut TimelineContext<'_>) -> Result<(), ScenarioError> {
        self.validate_by(t)?;
        match &self.dns_servers {
            Some(listed) => t.check_dns_servers(listed, "dns_servers"),
            None => Ok(()),
        }
    }

    async fn inject(&self, fleet: &mut impl FleetHandle<'_>) -> Result<String, HarnessError> {
        let plan = fleet.plan();
        let targets = self.targets(plan.dns.iter().map(|d| d.name.as_str()));
        let change = self.change();
        for name in &targets {
            fleet
                .change_dns(name, &change, StepKind::DnsFault.name())
                .await?;
        }
        Ok(format!(
            "{COLLECTOR_NAME}: {} on {}",
            said(&change),
            targets.join(", ")
        ))
    }

    /// A fault brings its check; `normal`, a repair, brings none (as `dns_repair`).
    fn checks(&self) -> Vec<Check<'_>> {
        if self.answer.value == Answer::Normal {
            return Vec::new();
        }
        vec![Check::new("dns_fault_took_effect", move |input| {
            dns_fault_took_effect(self, input)
        })]
    }
}

/// The change in words, as the evidence says it.
fn said(change: &DnsChange) -> String {
    match change {
        DnsChange::Set(addrs) if addrs.is_empty() => "no address (NODATA)".into(),
        DnsChange::Set(addrs) => format!("{addrs:?}"),
        DnsChange::Remove => "removed (NXDOMAIN)".into(),
        DnsChange::Fault(DnsFault::Servfail) => "SERVFAIL".into(),
        DnsChange::Fault(DnsFault::Delay { by }) => format!("answers {by} late"),
        DnsChange::Unfault => "the fault off".into(),
    }
}

/// Every listed DNS server told it made the change, once this step was due. The step is
/// journaled when every server has answered, after they told it, so the bound is the step's
/// own time on the timeline: the timeline's start (journaled before the driver reads the
/// clock it schedules from) plus `at`, never later than the step really began.
fn dns_fault_took_effect(step: &DnsFaultStep, input: &CheckInput<'_>) -> ExpectationResult {
    const NAME: &str = "dns_fault_took_effect";
    let (Some(_), Some(up)) = (
        input.state.injected_at(StepKind::DnsFault),
        input.state.fleet_up_ms,
    ) else {
        return result(NAME, false, "the dns_fault step never ran".into());
    };
    let at = up + u64::try_from(step.at.value.get().as_millis()).unwrap_or(u64::MAX);
    let change = step.change();
    let mut seen = Vec::new();
    let mut problems = Vec::new();
    for dns in step.targets(input.plan.dns.iter().map(|d| d.name.as_str())) {
        let told = (input.state.dns_changes.get(dns).into_iter().flatten())
            .find(|(t, name, c)| *t >= at && name == COLLECTOR_NAME && *c == change);
        match told {
            Some((t, _, _)) => seen.push(format!("{dns} at {t}ms")),
            None => problems.push(format!("{dns} never told it made it")),
        }
    }
    let what = said(&change);
    if problems.is_empty() {
        result(NAME, true, format!("{what}: {}", seen.join(", ")))
    } else {
        result(NAME, false, format!("{what}: {}", first_few(&problems, 5)))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::plan::Plan;
    use crate::run_state::RunState;

    fn servfail_on_dns_a_at_3s() -> DnsFaultStep {
        let yaml = "{ at: 3s, answer: servfail, dns_servers: [dns-a] }";
        serde_saphyr::from_str(yaml).expect("a step")
    }

    /// The check's verdict when the timeline started at 1000 ms, the step was journaled at
    /// `injected_ms`, and dns-a told the fault at `told_ms` (if at all).
    fn judged(injected_ms: u64, told_ms: Option<u64>) -> ExpectationResult {
        let step = servfail_on_dns_a_at_3s();
        let dns = vec!["dns-a".to_owned(), "dns-b".to_owned()];
        let plan = Plan::new(40, 1, 2, &dns, &BTreeSet::new());
        let mut state = RunState {
            fleet_up_ms: Some(1_000),
            steps: vec![(StepKind::DnsFault, injected_ms)],
            ..RunState::default()
        };
        if let Some(t) = told_ms {
            let change = DnsChange::Fault(DnsFault::Servfail);
            let told = (t, COLLECTOR_NAME.to_owned(), change);
            state.dns_changes.insert("dns-a".into(), vec![told]);
        }
        let input = CheckInput {
            plan: &plan,
            state: &state,
            end_ms: 20_000,
            writes: None,
            customers: None,
            external_agent: false,
        };
        dns_fault_took_effect(&step, &input)
    }

    #[test]
    fn a_server_that_told_the_fault_before_the_step_was_journaled_counts() {
        // The server tells the change while the harness still waits for its answer.
        let told = judged(4_010, Some(4_003));
        assert!(told.passed, "{told:?}");
        assert_eq!(told.detail, "SERVFAIL: dns-a at 4003ms");
    }

    #[test]
    fn a_change_before_the_step_was_due_or_none_at_all_fails() {
        assert!(
            !judged(4_010, Some(3_500)).passed,
            "before the step was due"
        );
        let never = judged(4_010, None);
        assert!(!never.passed);
        assert_eq!(never.detail, "SERVFAIL: dns-a never told it made it");
    }
}
