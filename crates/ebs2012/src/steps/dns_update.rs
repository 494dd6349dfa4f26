//! `dns_update: { at, propagate_to }`: the collector's A record is pointed at the replacement,
//! but only on the DNS servers listed; the others keep answering the dead address. The agents
//! behind those are the *stale* ones: the plan decides which they are ([`missed`]) and every other
//! part of the run reads it from there.
//!
//! Its check, `fault_took_effect`, makes sure the fault did not silently do nothing: every agent
//! behind a missed DNS server really kept the dead address and failed to report, and every other
//! agent moved to the replacement.

use std::collections::BTreeSet;
use std::net::IpAddr;

use outage_lab_ebs_events::COLLECTOR_NAME;
use outage_lab_proto::HumanDuration;
use outage_lab_proto::report::ExpectationResult;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{Step, TimelineContext, TimelineStep};
use crate::check::{Check, CheckInput, first_few, result};
use crate::fleet_handle::FleetHandle;
use crate::kinds::StepKind;
use crate::plan::ServerPlan;
use outage_lab_engine::error::HarnessError;
use outage_lab_engine::located::ScenarioError;

/// The partial DNS update of the incident.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsUpdate {
    /// When, from the moment the fleet is up.
    pub at: Spanned<HumanDuration>,
    /// The DNS servers the update reaches; the others keep answering the old address.
    pub propagate_to: Vec<Spanned<String>>,
}

/// The DNS servers of `dns_names` that the timeline's `dns_update` misses (none without one).
pub fn missed(timeline: &[Step], dns_names: &[String]) -> BTreeSet<String> {
    let reached: Option<BTreeSet<&str>> = timeline.iter().find_map(|s| match s {
        Step::DnsUpdate(u) => Some(u.propagate_to.iter().map(|n| n.value.as_str()).collect()),
        _ => None,
    });
    match reached {
        None => BTreeSet::new(),
        Some(reached) => dns_names
            .iter()
            .filter(|n| !reached.contains(n.as_str()))
            .cloned()
            .collect(),
    }
}

impl TimelineStep for DnsUpdate {
    fn at(&self) -> &Spanned<HumanDuration> {
        &self.at
    }

    fn validate(&self, t: &mut TimelineContext<'_>) -> Result<(), ScenarioError> {
        if !t.collector_replaced {
            return Err(t.loc.at(&self.at, "dns_update comes before replace_collector; there is no replacement to point DNS at yet".into()));
        }
        if t.dns_updated {
            return Err(t.loc.at(
                &self.at,
                "a second dns_update; use dns_repair to finish propagation".into(),
            ));
        }
        t.dns_updated = true;
        t.check_dns_servers(&self.propagate_to, "propagate_to")
    }

    async fn inject(&self, fleet: &mut impl FleetHandle<'_>) -> Result<String, HarnessError> {
        let plan = fleet.plan();
        let reached: Vec<&str> = self.propagate_to.iter().map(|n| n.value.as_str()).collect();
        for name in &reached {
            fleet.point_collector_record(name, "dns_update").await?;
        }
        let missed: Vec<&str> = (plan.dns.iter().filter(|d| d.stale))
            .map(|d| d.name.as_str())
            .collect();
        Ok(format!(
            "{COLLECTOR_NAME} -> {} on {}; missed {} ({} agents stay on the dead address)",
            plan.collector_new,
            reached.join(", "),
            if missed.is_empty() {
                "none".to_owned()
            } else {
                missed.join(", ")
            },
            plan.stale_servers().count()
        ))
    }

    fn checks(&self) -> Vec<Check<'_>> {
        vec![Check::new("fault_took_effect", fault_took_effect)]
    }
}

/// The moment staleness is judged: when DNS was repaired, or the end of the run.
fn judged_at(input: &CheckInput<'_>) -> u64 {
    (input.state.injected_at(StepKind::DnsRepair)).unwrap_or(input.end_ms)
}

/// Which servers really behaved stale: at the moment DNS was repaired (or the end), their agent
/// still held the old collector address and had failed reports. An agent the lab did not write
/// tells nothing itself: it behaved stale when its DNS server answered it the old address after
/// the update and the replacement collector had no report from it by then.
pub fn observed_stale(input: &CheckInput<'_>) -> Vec<String> {
    if input.external_agent {
        return (input.plan.servers.iter())
            .filter(|s| external_stale_problem(input, s).is_none())
            .filter(|s| s.stale)
            .map(|s| s.id.clone())
            .collect();
    }
    let old = IpAddr::V4(input.plan.collector_old);
    let at = judged_at(input);
    (input.state.servers.iter())
        .filter(|(_, s)| s.resolved_at(at) == Some(&[old][..]) && s.failed_reports() > 0)
        .map(|(id, _)| id.clone())
        .collect()
}

/// What contradicts the plan about an external agent on `planned`, if anything: a stale one
/// must have been answered the dead address after the update and have reached nothing; a fresh
/// one must have reported to the replacement.
fn external_stale_problem(input: &CheckInput<'_>, planned: &ServerPlan) -> Option<String> {
    let old = IpAddr::V4(input.plan.collector_old);
    let new = input.plan.collector_new;
    let update = input.state.injected_at(StepKind::DnsUpdate).unwrap_or(0);
    let at = judged_at(input);
    let (id, dns) = (&planned.id, &planned.dns_server);
    let state = input.state.servers.get(id);
    let reached_by = |t| state.map_or(0, |s| s.reports_to_new_collector_by(t));
    if !planned.stale {
        return (reached_by(input.end_ms) == 0)
            .then(|| format!("{id} (fresh, via {dns}) never reported to the replacement {new}"));
    }
    let answered_old = input.state.dns_answered_between(dns, old, update, at);
    if answered_old == 0 {
        return Some(format!(
            "{id} (stale, via {dns}): {dns} never answered the dead address {old} after the update; does the agent resolve collector.lab.internal through the system's resolver?"
        ));
    }
    let reached = reached_by(at);
    (reached > 0).then(|| {
        format!("{id} (stale, via {dns}) reached the replacement {new} {reached} times before DNS was repaired")
    })
}

/// `fault_took_effect` for an agent the lab did not write, from its DNS server's answers and
/// the replacement collector's counts.
fn external_fault_took_effect(input: &CheckInput<'_>) -> ExpectationResult {
    let problems: Vec<String> = (input.plan.servers.iter())
        .filter_map(|s| external_stale_problem(input, s))
        .collect();
    if !problems.is_empty() {
        return result("fault_took_effect", false, first_few(&problems, 5));
    }
    let old = IpAddr::V4(input.plan.collector_old);
    let update = input.state.injected_at(StepKind::DnsUpdate).unwrap_or(0);
    let at = judged_at(input);
    let missed: BTreeSet<&str> = (input.plan.stale_servers())
        .map(|s| s.dns_server.as_str())
        .collect();
    let answers: u64 = (missed.iter())
        .map(|dns| input.state.dns_answered_between(dns, old, update, at))
        .sum();
    let stale = input.plan.stale_servers().count();
    result(
        "fault_took_effect",
        true,
        format!(
            "{} answered the dead address {old} {answers} times after the update and the replacement counted no report from their {stale} agents; {} others reported to {}",
            missed.into_iter().collect::<Vec<_>>().join(", "),
            input.plan.servers.len() - stale,
            input.plan.collector_new
        ),
    )
}

fn fault_took_effect(input: &CheckInput<'_>) -> ExpectationResult {
    if input.external_agent {
        return external_fault_took_effect(input);
    }
    let old = IpAddr::V4(input.plan.collector_old);
    let new = IpAddr::V4(input.plan.collector_new);
    let at = judged_at(input);
    let mut problems = Vec::new();
    for planned in &input.plan.servers {
        let Some(state) = input.state.servers.get(&planned.id) else {
            problems.push(format!("{}: no events at all", planned.id));
            continue;
        };
        let held = state.resolved_at(at);
        if planned.stale {
            if held != Some(&[old][..]) {
                problems.push(format!(
                    "{} (stale, via {}) held {:?}, not the dead address {old}",
                    planned.id, planned.dns_server, held
                ));
            } else if state.failed_reports() == 0 {
                problems.push(format!("{} (stale) never failed a report", planned.id));
            }
        } else {
            // No DNS server answers the replacement before the update reaches it, so resolving
            // it at all is the move. (Not "after the update's journal time": that is stamped
            // once every reached server took the record, and an agent behind the first one
            // can resolve it before then.)
            let moved = (state.resolved.iter()).any(|(_, a)| a.as_slice() == [new]);
            if !moved {
                problems.push(format!(
                    "{} (fresh, via {}) never resolved the replacement {new}",
                    planned.id, planned.dns_server
                ));
            }
        }
    }
    let stale = input.plan.stale_servers().count();
    let name = "fault_took_effect";
    if problems.is_empty() {
        return result(
            name,
            true,
            format!(
                "{stale} agents behind missed DNS servers kept {old} and failed; {} others moved to {new}",
                input.plan.servers.len() - stale
            ),
        );
    }
    result(name, false, first_few(&problems, 5))
}
