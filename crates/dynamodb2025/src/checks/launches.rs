//! The customers' launches, judged from their `launch_stats`: refused for insufficient capacity
//! while no server held a valid lease, and placed again once the leases were back
//! (`launches_refused`); with a fix that keeps the endpoint, never refused
//! (`launches_never_refused`).

use std::collections::BTreeMap;

use outage_lab_dynamodb_events::Event;
use outage_lab_engine::checks::result;
use outage_lab_proto::report::ExpectationResult;

use super::Run;
use crate::scenario::Scenario;

/// The stretch before the stop in which launches must be placed again, and none refused.
const TAIL_MS: u64 = 3000;

/// Every customer's launches in the timeline: `(t_ms, launched, insufficient capacity)`, and
/// the insufficient capacity per customer.
struct Launches {
    told: Vec<(u64, u64, u64)>,
    refused_by: BTreeMap<String, u64>,
}

fn launches(run: &Run<'_>) -> Launches {
    let mut told = Vec::new();
    let mut refused_by = BTreeMap::new();
    for e in run.during() {
        if let Event::LaunchStats {
            customer,
            launched,
            insufficient_capacity,
            ..
        } = &e.event
        {
            told.push((e.t_ms, *launched, *insufficient_capacity));
            *refused_by.entry(customer.clone()).or_default() += insufficient_capacity;
        }
    }
    Launches { told, refused_by }
}

/// Launches refused for insufficient capacity during the timeline (`None` without launches).
pub(super) fn refused(run: &Run<'_>, scenario: &Scenario) -> Option<u64> {
    scenario.leases.as_ref()?.launches.as_ref()?;
    Some(launches(run).refused_by.values().sum())
}

/// How many rows [`row`] plans: one with launches.
pub(super) fn planned(scenario: &Scenario) -> usize {
    usize::from(
        scenario
            .leases
            .as_ref()
            .is_some_and(|l| l.launches.is_some()),
    )
}

/// The launches' row, for a scenario whose customers launch.
pub(super) fn row(run: &Run<'_>, scenario: &Scenario) -> Option<ExpectationResult> {
    scenario.leases.as_ref()?.launches.as_ref()?;
    let l = launches(run);
    let refused: u64 = l.refused_by.values().sum();
    let placed: u64 = l.told.iter().map(|t| t.1).sum();
    if scenario.fixes.protect_endpoint() {
        let why = format!("{placed} launches placed, {refused} refused for insufficient capacity");
        return Some(result(
            "launches_never_refused",
            refused == 0 && placed > 0,
            why,
        ));
    }
    let refusing: Vec<u64> = (l.told.iter()).filter(|t| t.2 > 0).map(|t| t.0).collect();
    let tail_from = run
        .stopping_ms
        .min(l.told.last().map_or(0, |t| t.0 + 1))
        .saturating_sub(TAIL_MS);
    let tail = l.told.iter().filter(|t| t.0 >= tail_from);
    let (tail_placed, tail_refused) = tail.fold((0, 0), |(p, r), t| (p + t.1, r + t.2));
    let by: Vec<String> = (l.refused_by.iter())
        .map(|(c, n)| format!("{c} {n}"))
        .collect();
    let when = match (refusing.first(), refusing.last()) {
        (Some(first), Some(last)) => format!(" from {first}ms to {last}ms ({})", by.join(", ")),
        _ => String::new(),
    };
    let why = format!(
        "{refused} launches refused with insufficient capacity{when}; in the last {TAIL_MS}ms, {tail_placed} placed and {tail_refused} refused"
    );
    let held = refused > 0 && tail_placed > 0 && tail_refused == 0;
    Some(result("launches_refused", held, why))
}
