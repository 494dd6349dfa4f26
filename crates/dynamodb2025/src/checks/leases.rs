//! The second half's rows, judged from the lease manager's `lease_stats` (one a second):
//! `leases_expired` while the endpoint was empty; `congestive_collapse` after the repair, the
//! workers busy and nearly all their work done too late; then `recovers_after_load_shed` after
//! the operators' throttle and restart, or with `admission_control` or `recovery_runbook`
//! `recovers_by_itself`. With a fix that keeps the endpoint, `leases_kept`.

use outage_lab_dynamodb_events::Event;
use outage_lab_engine::checks::result;
use outage_lab_proto::report::ExpectationResult;
use outage_lab_proto::{EngineEvent, Vocabulary};

use super::Run;
use crate::scenario::{Leases, Scenario, Step};

use outage_lab_lease_manager::runbook::BACK_SHARE;

/// A second counts as collapsed when less than this share of the work finished in time.
const GOODPUT_SHARE: f64 = 0.1;

/// One second of the lease manager, as it told it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Second {
    pub t_ms: u64,
    pub queued: u64,
    pub processed: u64,
    pub completed: u64,
    pub timed_out: u64,
    pub leases_valid: u64,
}

/// The rows for a scenario with `leases:`, after the first half's.
pub(super) fn rows(
    run: &Run<'_>,
    scenario: &Scenario,
    leases: &Leases,
    emptied_ms: Option<u64>,
) -> Vec<ExpectationResult> {
    let seconds = seconds(run);
    let servers = leases.servers.count as u64;
    if scenario.fixes.protect_endpoint() {
        return vec![leases_kept(&seconds, servers)];
    }
    let mut rows = vec![leases_expired(run, &seconds, servers, emptied_ms)];
    let Some(repair) = run.repair_ms else {
        return rows;
    };
    let shed = load_shed_ms(run, scenario);
    if scenario.fixes.heal_lease_manager() {
        rows.push(recovered(
            "recovers_by_itself",
            &seconds,
            leases,
            (repair, "the repair"),
            shed,
        ));
        return rows;
    }
    rows.push(congestive_collapse(
        &seconds,
        leases,
        settled_ms(run, leases, repair),
        shed,
    ));
    if let Some(shed) = shed {
        rows.push(recovered(
            "recovers_after_load_shed",
            &seconds,
            leases,
            (shed, "the last throttle or restart"),
            None,
        ));
    }
    rows
}

/// When the manager's checks can see the service again after the repair at `repair_ms`: once
/// the negative answers cached before it have expired and the workers' connections aged out.
fn settled_ms(run: &Run<'_>, leases: &Leases, repair_ms: u64) -> u64 {
    repair_ms + run.ttl_ms + leases.manager.connection_max_age.as_millis()
}

/// How long the manager stayed collapsed after the repair, in lab ms (0 without a lease
/// manager or a repair): what `compare` measures.
pub(super) fn collapsed_ms(run: &Run<'_>, scenario: &Scenario) -> u64 {
    let (Some(leases), Some(repair)) = (&scenario.leases, run.repair_ms) else {
        return 0;
    };
    let seconds = seconds(run);
    let streak = longest_collapse(
        &seconds,
        leases,
        settled_ms(run, leases, repair),
        load_shed_ms(run, scenario),
    );
    lasted_ms(&streak)
}

/// How many rows [`rows`] plans.
pub(super) fn planned(scenario: &Scenario) -> usize {
    if scenario.leases.is_none() {
        return 0;
    }
    if scenario.fixes.protect_endpoint() {
        return 1;
    }
    let repaired = (scenario.steps().iter()).any(|(_, s)| matches!(s, Step::ManualRepair));
    let shed = (scenario.steps().iter()).any(|(_, s)| s.sheds_load());
    match (repaired, scenario.fixes.heal_lease_manager()) {
        (false, _) => 1,
        (true, true) => 2,
        (true, false) => 2 + usize::from(shed),
    }
}

fn seconds(run: &Run<'_>) -> Vec<Second> {
    (run.during())
        .filter_map(|e| match e.event {
            Event::LeaseStats {
                queued,
                processed,
                completed,
                timed_out,
                leases_valid,
                ..
            } => Some(Second {
                t_ms: e.t_ms,
                queued,
                processed,
                completed,
                timed_out,
                leases_valid,
            }),
            _ => None,
        })
        .collect()
}

/// When the last step that sheds the lease manager's load was done.
fn load_shed_ms(run: &Run<'_>, scenario: &Scenario) -> Option<u64> {
    shed_steps_ms(run, scenario).last().copied()
}

/// When each step that sheds the lease manager's load was done, in order.
fn shed_steps_ms(run: &Run<'_>, scenario: &Scenario) -> Vec<u64> {
    let names: Vec<&str> = (scenario.steps().iter())
        .filter(|(_, s)| s.sheds_load())
        .map(|(_, s)| s.name())
        .collect();
    (run.during())
        .filter_map(|e| match e.event.engine() {
            Some(EngineEvent::FaultInjected { action, .. }) if names.contains(&action.as_str()) => {
                Some(e.t_ms)
            }
            _ => None,
        })
        .collect()
}

/// How long after the repair the leases were back to stay, by themselves, in lab ms: the first
/// second from which at least [`BACK_SHARE`] of them were valid in every second up to the first
/// step that sheds load (or the end). `None` when they were not back by then, or without a
/// lease manager or a repair. What `grid` maps as `back_by_itself_s`.
pub(super) fn back_by_itself_ms(run: &Run<'_>, scenario: &Scenario) -> Option<u64> {
    let (leases, repair) = (scenario.leases.as_ref()?, run.repair_ms?);
    let floor = (leases.servers.count as f64 * BACK_SHARE).ceil() as u64;
    let shed = shed_steps_ms(run, scenario).first().copied();
    let after: Vec<Second> = (seconds(run).into_iter())
        .filter(|s| s.t_ms > repair && shed.is_none_or(|x| s.t_ms <= x))
        .collect();
    let back = match after.iter().rposition(|s| s.leases_valid < floor) {
        None => after.first()?,
        Some(last_below) => after.get(last_below + 1)?,
    };
    Some(back.t_ms - repair)
}

/// The most leases lost at once once the fleet held its leases (the first second with
/// [`BACK_SHARE`] of them valid): servers less the fewest valid from then on (`None` without a
/// lease manager).
pub(super) fn most_lost(run: &Run<'_>, scenario: &Scenario) -> Option<u64> {
    let servers = scenario.leases.as_ref()?.servers.count as u64;
    let floor = (servers as f64 * BACK_SHARE).ceil() as u64;
    let seconds = seconds(run);
    let held = seconds.iter().position(|s| s.leases_valid >= floor);
    let fewest = held.and_then(|i| seconds[i..].iter().map(|s| s.leases_valid).min());
    Some(fewest.map_or(0, |f| servers.saturating_sub(f)))
}

fn leases_expired(
    run: &Run<'_>,
    seconds: &[Second],
    servers: u64,
    emptied_ms: Option<u64>,
) -> ExpectationResult {
    let Some(from) = emptied_ms else {
        let why = "the endpoint was never emptied, so no state check failed".into();
        return result("leases_expired", false, why);
    };
    let until = run.repaired_or_end();
    let before = (seconds.iter().filter(|s| s.t_ms <= from))
        .map(|s| s.leases_valid)
        .max()
        .unwrap_or(0);
    let fewest = (seconds.iter())
        .filter(|s| s.t_ms > from && s.t_ms <= until)
        .min_by_key(|s| s.leases_valid);
    let Some(fewest) = fewest else {
        let why = format!("the lease manager told nothing from {from}ms to {until}ms");
        return result("leases_expired", false, why);
    };
    let expired = before.saturating_sub(fewest.leases_valid);
    result(
        "leases_expired",
        fewest.leases_valid * 2 <= servers,
        format!(
            "with the endpoint empty from {from}ms, leases valid fell from {before} to {} of {servers} by {}ms: {expired} expired",
            fewest.leases_valid, fewest.t_ms
        ),
    )
}

fn leases_kept(seconds: &[Second], servers: u64) -> ExpectationResult {
    let floor = (servers as f64 * BACK_SHARE).ceil() as u64;
    let whole = seconds.iter().position(|s| s.leases_valid >= floor);
    let fewest = whole.and_then(|i| seconds[i..].iter().min_by_key(|s| s.leases_valid));
    match fewest {
        Some(s) => result(
            "leases_kept",
            s.leases_valid >= floor,
            format!(
                "once the fleet held its leases, the fewest valid were {} of {servers} at {}ms (floor {floor})",
                s.leases_valid, s.t_ms
            ),
        ),
        None => result(
            "leases_kept",
            false,
            format!("leases valid never reached {floor} of {servers}"),
        ),
    }
}

/// Busy: a quarter of what the workers can do at best. They do about 90% of it when
/// collapsed; the quarter leaves room for a noisy machine, and still tells a busy manager from
/// an idle one (which does nothing in time either).
fn busy(leases: &Leases) -> u64 {
    (leases.capacity_per_second() / 4.0) as u64
}

/// The longest run of collapsed seconds between `from_ms` and `until_ms` (the end if none):
/// the workers busy and under [`GOODPUT_SHARE`] of their work done in time.
fn longest_collapse(
    seconds: &[Second],
    leases: &Leases,
    from_ms: u64,
    until_ms: Option<u64>,
) -> Vec<Second> {
    let busy = busy(leases);
    // Each second counts the one before it: the first whole one after `from_ms`.
    let window: Vec<Second> = (seconds.iter())
        .filter(|s| s.t_ms >= from_ms + 1000 && until_ms.is_none_or(|u| s.t_ms <= u))
        .copied()
        .collect();
    let collapsed = |s: &Second| {
        s.processed >= busy && (s.completed as f64) < s.processed as f64 * GOODPUT_SHARE
    };
    let (mut best, mut run) = (0..0, 0);
    for (i, s) in window.iter().enumerate() {
        run = if collapsed(s) { run + 1 } else { 0 };
        if run > best.len() {
            best = i + 1 - run..i + 1;
        }
    }
    window[best].to_vec()
}

/// How long a run of seconds lasted (each second counts the one before it).
fn lasted_ms(streak: &[Second]) -> u64 {
    match (streak.first(), streak.last()) {
        (Some(first), Some(last)) => last.t_ms + 1000 - first.t_ms,
        _ => 0,
    }
}

fn congestive_collapse(
    seconds: &[Second],
    leases: &Leases,
    from_ms: u64,
    until_ms: Option<u64>,
) -> ExpectationResult {
    let best = longest_collapse(seconds, leases, from_ms, until_ms);
    let need = leases.collapsed_for.as_millis();
    let busy = busy(leases);
    let (Some(first), Some(last)) = (best.first(), best.last()) else {
        let why = format!(
            "no second from {from_ms}ms had the workers busy ({busy}+ renewals a second) with under {}% done in time",
            (GOODPUT_SHARE * 100.0) as u64
        );
        return result("congestive_collapse", false, why);
    };
    let lasted = lasted_ms(&best);
    let processed: u64 = best.iter().map(|s| s.processed).sum();
    let completed: u64 = best.iter().map(|s| s.completed).sum();
    let timed_out: u64 = best.iter().map(|s| s.timed_out).sum();
    result(
        "congestive_collapse",
        lasted >= need,
        format!(
            "for {lasted}ms from {}ms (limit {need}ms): {completed} of {processed} renewals done in time, {} timed out ({}%), queue {} to {}, leases valid at most {}",
            first.t_ms - 1000,
            timed_out,
            timed_out * 100 / processed.max(1),
            first.queued,
            last.queued,
            best.iter().map(|s| s.leases_valid).max().unwrap_or(0)
        ),
    )
}

/// Every lease back within `back_within` of `from`, and before any load shedding at `shed`.
fn recovered(
    row: &str,
    seconds: &[Second],
    leases: &Leases,
    (from_ms, what): (u64, &str),
    shed: Option<u64>,
) -> ExpectationResult {
    let servers = leases.servers.count as u64;
    let floor = (servers as f64 * BACK_SHARE).ceil() as u64;
    let limit = leases.back_within.as_millis();
    let back = (seconds.iter()).find(|s| s.t_ms > from_ms && s.leases_valid >= floor);
    let Some(back) = back else {
        let most = (seconds.iter().filter(|s| s.t_ms > from_ms))
            .map(|s| s.leases_valid)
            .max()
            .unwrap_or(0);
        let why = format!(
            "after {what} at {from_ms}ms leases valid never reached {floor} of {servers} (at most {most})"
        );
        return result(row, false, why);
    };
    let took = back.t_ms - from_ms;
    let shed_first = shed.is_some_and(|s| s < back.t_ms);
    let shed_note = match shed {
        Some(s) if shed_first => format!("; but the operators shed load first, at {s}ms"),
        _ => String::new(),
    };
    result(
        row,
        took <= limit && !shed_first,
        format!(
            "after {what} at {from_ms}ms, {} of {servers} leases were valid at {}ms: {took}ms later (limit {limit}ms){shed_note}",
            back.leases_valid, back.t_ms
        ),
    )
}
