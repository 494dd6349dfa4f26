//! The verdict rows of a 2025 run, each judged from the journal alone, with its evidence.
//!
//! Without a fix that protects the endpoint: `fault_took_effect` (the stale write, the deletion
//! that emptied the endpoint, every DNS server answering no address), `automation_stuck` (no
//! enactor wrote the endpoint again before the repair), `new_connections_failed` (and pooled
//! ones kept working), or with `serve_stale` `clients_kept_working`, and
//! `clients_recover_within`. With `enactor_checks_at_write` or `cleanup_keeps_active_plan`:
//! `endpoint_never_emptied` and `clients_kept_working`.

mod launches;
mod leases;
mod measures;
mod window;

pub use measures::Measures;

use outage_lab_dynamodb_events::{Event, Generation, JournalEntry, Refusal};
use outage_lab_engine::checks::result;
use outage_lab_proto::report::ExpectationResult;
use outage_lab_proto::{EngineEvent, RunPhase, Vocabulary};

use crate::scenario::Scenario;
use window::Clients;

/// Every planned row, in order.
pub fn judge(scenario: &Scenario, entries: &[JournalEntry]) -> Vec<ExpectationResult> {
    let run = Run::read(scenario, entries);
    let mut rows = vec![processes_stayed_up(&run)];
    let emptied_ms = first_half(&run, scenario, &mut rows);
    if let Some(leases) = &scenario.leases {
        rows.extend(leases::rows(&run, scenario, leases, emptied_ms));
    }
    rows.extend(launches::row(&run, scenario));
    rows
}

/// The DNS race's rows, pushed to `rows`; when every DNS server answered the endpoint empty.
fn first_half(
    run: &Run<'_>,
    scenario: &Scenario,
    rows: &mut Vec<ExpectationResult>,
) -> Option<u64> {
    if scenario.fixes.protect_endpoint() {
        rows.push(endpoint_never_emptied(run));
        rows.push(clients_kept_working(run, run.timeline_ms));
        return None;
    }
    let race = fault_took_effect(run);
    let emptied_ms = race.as_ref().ok().map(|r| r.emptied_ms);
    rows.push(match &race {
        Ok(race) => result("fault_took_effect", true, race.evidence.clone()),
        Err(why) => result("fault_took_effect", false, why.clone()),
    });
    rows.push(automation_stuck(run, emptied_ms));
    rows.push(match scenario.fixes.serve_stale {
        Some(_) => clients_kept_working(run, emptied_ms.unwrap_or(run.timeline_ms)),
        None => new_connections_failed(run, scenario, emptied_ms),
    });
    rows.push(clients_recover_within(run, scenario));
    emptied_ms
}

/// The run's numbers ([`Measures`]), from the journal.
pub fn measure(scenario: &Scenario, entries: &[JournalEntry]) -> Measures {
    Measures::of(&Run::read(scenario, entries), scenario)
}

/// How many rows [`judge`] plans for the scenario, for `validate`'s summary.
pub fn planned(scenario: &Scenario) -> usize {
    let first_half = if scenario.fixes.protect_endpoint() {
        3
    } else {
        5
    };
    first_half + leases::planned(scenario) + launches::planned(scenario)
}

/// What the checks read from the journal, once.
struct Run<'a> {
    entries: &'a [JournalEntry],
    endpoint: &'a str,
    dns_servers: usize,
    /// When the timeline started (the lab's clock, ms).
    timeline_ms: u64,
    /// When the run began to stop.
    stopping_ms: u64,
    /// When the first manual repair was done.
    repair_ms: Option<u64>,
    /// The DNS answers' TTL, a negative answer's included.
    ttl_ms: u64,
}

impl<'a> Run<'a> {
    fn read(scenario: &'a Scenario, entries: &'a [JournalEntry]) -> Run<'a> {
        let phase = |wanted: RunPhase| {
            (entries.iter()).find_map(|e| match e.event.engine() {
                Some(EngineEvent::Phase { name, .. }) if name == wanted => Some(e.t_ms),
                _ => None,
            })
        };
        let repair_ms = (entries.iter()).find_map(|e| match e.event.engine() {
            Some(EngineEvent::FaultInjected { action, .. }) if action == "manual_repair" => {
                Some(e.t_ms)
            }
            _ => None,
        });
        Run {
            entries,
            endpoint: &scenario.service.endpoint,
            dns_servers: scenario.dns.servers,
            timeline_ms: phase(RunPhase::Timeline).unwrap_or(0),
            stopping_ms: phase(RunPhase::Stopping).unwrap_or(u64::MAX),
            repair_ms,
            ttl_ms: scenario.dns.ttl.as_millis(),
        }
    }

    /// Entries of the timeline, before the run began to stop.
    fn during(&self) -> impl Iterator<Item = &'a JournalEntry> + '_ {
        (self.entries.iter()).filter(|e| e.t_ms >= self.timeline_ms && e.t_ms < self.stopping_ms)
    }

    /// The end of the outage window: the repair, else the stop.
    fn repaired_or_end(&self) -> u64 {
        self.repair_ms.unwrap_or(self.stopping_ms)
    }
}

fn processes_stayed_up(run: &Run<'_>) -> ExpectationResult {
    let exited: Vec<String> = (run.entries.iter())
        .filter(|e| e.t_ms < run.stopping_ms)
        .filter_map(|e| match e.event.engine() {
            Some(EngineEvent::ProcessExited {
                name,
                status,
                expected: false,
                ..
            }) => Some(format!("{name} ({status}) at {}ms", e.t_ms)),
            _ => None,
        })
        .collect();
    match exited.is_empty() {
        true => result(
            "processes_stayed_up",
            true,
            "no process of the run exited unasked".into(),
        ),
        false => result(
            "processes_stayed_up",
            false,
            format!("exited unasked: {}", exited.join(", ")),
        ),
    }
}

/// The race as the journal shows it.
struct Race {
    emptied_ms: u64,
    evidence: String,
}

fn fault_took_effect(run: &Run<'_>) -> Result<Race, String> {
    let deleted = run.during().find_map(|e| match &e.event {
        Event::PlanDeleted {
            enactor,
            generation,
            emptied,
            ..
        } if emptied.iter().any(|n| n == run.endpoint) => Some((e.t_ms, enactor, *generation)),
        _ => None,
    });
    let Some((deleted_ms, cleaner, generation)) = deleted else {
        return Err(format!(
            "no clean-up deleted a plan {} used: the race did not fire before the run ended ({})",
            run.endpoint,
            stalled_writes(run)
        ));
    };
    let (written_ms, stale) = stale_write(run, generation, deleted_ms).ok_or_else(|| {
        format!("{cleaner} deleted {generation}, which {} used, at {deleted_ms}ms, but no enactor wrote it over a newer plan", run.endpoint)
    })?;
    // The clean-up empties the servers before it tells of the deletion: count from the write.
    let empty_ms = all_servers_empty(run, written_ms).ok_or_else(|| {
        format!(
            "{stale}; {cleaner}'s clean-up deleted it at {deleted_ms}ms, but not every one of {} DNS servers answered {} with no address before the repair",
            run.dns_servers, run.endpoint
        )
    })?;
    Ok(Race {
        emptied_ms: empty_ms,
        evidence: format!(
            "{stale}; {cleaner}'s clean-up deleted {generation} at {deleted_ms}ms; all {} DNS servers answered {} with no address from {empty_ms}ms",
            run.dns_servers, run.endpoint
        ),
    })
}

/// How the slowed writes of the endpoint ended, in words: the evidence of a race that did not
/// fire (each write landed too early, and was overwritten, or too late, its plan deleted).
fn stalled_writes(run: &Run<'_>) -> String {
    let entries: Vec<&JournalEntry> = run.during().collect();
    let (mut stalled, mut written, mut gone, mut refused) = (0, 0, 0, 0);
    for (i, e) in entries.iter().enumerate() {
        let Event::WriteStalled {
            enactor,
            endpoint,
            generation,
            ..
        } = &e.event
        else {
            continue;
        };
        if endpoint != run.endpoint {
            continue;
        }
        stalled += 1;
        let outcome = entries[i..].iter().find_map(|later| match &later.event {
            Event::EndpointApplied {
                enactor: who,
                generation: g,
                ..
            } if who == enactor && g == generation => Some(None),
            Event::ApplyRefused {
                enactor: who,
                generation: g,
                refusal,
                ..
            } if who == enactor && g == generation => Some(Some(*refusal)),
            _ => None,
        });
        match outcome {
            Some(None) => written += 1,
            Some(Some(Refusal::OwnPlanGone)) => gone += 1,
            Some(Some(_)) => refused += 1,
            None => {}
        }
    }
    format!(
        "{stalled} stalled writes: {written} went through and were overwritten before a clean-up, {gone} found their own plan already deleted, {refused} refused otherwise"
    )
}

/// The stale overwrite of the endpoint with `generation`, before `before_ms`: when, in words.
fn stale_write(run: &Run<'_>, generation: Generation, before_ms: u64) -> Option<(u64, String)> {
    (run.during().filter(|e| e.t_ms <= before_ms))
        .filter_map(|e| match &e.event {
            Event::EndpointApplied {
                enactor,
                endpoint,
                generation: written,
                replaced: Some(replaced),
                ..
            } if endpoint == run.endpoint && *written == generation && *replaced > generation => {
                Some((
                    e.t_ms,
                    format!(
                        "{enactor} wrote the old plan {generation} over the newer {replaced} at {}ms",
                        e.t_ms
                    ),
                ))
            }
            _ => None,
        })
        .last()
}

/// When every DNS server had answered the endpoint with no address, after `from_ms` and before
/// the repair.
fn all_servers_empty(run: &Run<'_>, from_ms: u64) -> Option<u64> {
    let mut empty = std::collections::BTreeSet::new();
    for e in run
        .during()
        .filter(|e| e.t_ms >= from_ms && e.t_ms < run.repaired_or_end())
    {
        if let Event::EndpointProbed {
            server,
            addrs,
            error: None,
            ..
        } = &e.event
        {
            if addrs.is_empty() {
                empty.insert(server.clone());
            } else {
                empty.remove(server);
            }
            if empty.len() == run.dns_servers {
                return Some(e.t_ms);
            }
        }
    }
    None
}

fn automation_stuck(run: &Run<'_>, emptied_ms: Option<u64>) -> ExpectationResult {
    let Some(from) = emptied_ms else {
        return result(
            "automation_stuck",
            false,
            "the endpoint was never emptied".into(),
        );
    };
    let until = run.repaired_or_end();
    let (mut applied, mut refused) = (Vec::new(), 0);
    for e in run.during().filter(|e| e.t_ms > from && e.t_ms < until) {
        match &e.event {
            Event::EndpointApplied {
                enactor, endpoint, ..
            } if endpoint == run.endpoint => {
                applied.push(format!("{enactor} at {}ms", e.t_ms));
            }
            Event::ApplyRefused { endpoint, .. } if endpoint == run.endpoint => refused += 1,
            _ => {}
        }
    }
    match applied.is_empty() {
        true => result(
            "automation_stuck",
            true,
            format!(
                "no enactor wrote {} from {from}ms to {until}ms; they refused it {refused} times, its plan gone",
                run.endpoint
            ),
        ),
        false => result(
            "automation_stuck",
            false,
            format!(
                "the automation wrote {} again before the repair: {}",
                run.endpoint,
                applied.join(", ")
            ),
        ),
    }
}

fn endpoint_never_emptied(run: &Run<'_>) -> ExpectationResult {
    let empty = run.during().find_map(|e| match &e.event {
        Event::EndpointProbed {
            server,
            addrs,
            error: None,
            ..
        } if addrs.is_empty() => Some(format!(
            "{server} answered {} with no address at {}ms",
            run.endpoint, e.t_ms
        )),
        _ => None,
    });
    let kept = (run.during())
        .filter(|e| matches!(e.event, Event::PlanKept { .. }))
        .count();
    let refused = (run.during())
        .filter(|e| matches!(&e.event, Event::ApplyRefused { endpoint, .. } if endpoint == run.endpoint))
        .count();
    match empty {
        None => result(
            "endpoint_never_emptied",
            true,
            format!(
                "every DNS server answered {} with addresses all along; clean-up kept {kept} plans in use, enactors declined {refused} writes to it",
                run.endpoint
            ),
        ),
        Some(when) => result("endpoint_never_emptied", false, when),
    }
}

fn clients_kept_working(run: &Run<'_>, from_ms: u64) -> ExpectationResult {
    let clients = Clients::between(run, from_ms, run.stopping_ms);
    match clients.failed {
        0 if clients.ok > 0 => result(
            "clients_kept_working",
            true,
            format!(
                "{} requests ok and none failed from {from_ms}ms; {} lookups served stale",
                clients.ok, clients.served_stale
            ),
        ),
        _ => result(
            "clients_kept_working",
            false,
            format!(
                "{} requests failed and {} ok from {from_ms}ms ({} lookups found no address)",
                clients.failed, clients.ok, clients.lookups_failed
            ),
        ),
    }
}

fn new_connections_failed(
    run: &Run<'_>,
    scenario: &Scenario,
    emptied_ms: Option<u64>,
) -> ExpectationResult {
    let Some(from) = emptied_ms else {
        return result(
            "new_connections_failed",
            false,
            "the endpoint was never emptied".into(),
        );
    };
    let until = run.repaired_or_end();
    let all = Clients::between(run, from, until);
    let pooled_for = scenario.clients.connection_max_age.as_millis();
    let early = Clients::between(run, from, from + pooled_for);
    let held = all.failed > 0 && all.lookups_failed > 0 && early.ok > 0;
    result(
        "new_connections_failed",
        held,
        format!(
            "from {from}ms to {until}ms: {} requests failed, {} lookups found no address; {} requests still succeeded in the first {} (connections pooled before)",
            all.failed, all.lookups_failed, early.ok, scenario.clients.connection_max_age
        ),
    )
}

fn clients_recover_within(run: &Run<'_>, scenario: &Scenario) -> ExpectationResult {
    let limit = scenario.expect.recovered_within;
    let Some(repair) = run.repair_ms else {
        return result(
            "clients_recover_within",
            false,
            "the timeline has no manual_repair".into(),
        );
    };
    let last_failure = Clients::last_failure(run, repair);
    let recovered = last_failure.unwrap_or(repair);
    let after = Clients::between(run, recovered, run.stopping_ms);
    let took = recovered - repair;
    let held = took <= limit.as_millis() && after.ok > 0 && after.failed == 0;
    result(
        "clients_recover_within",
        held,
        format!(
            "the last failed request was counted {took}ms after the repair (limit {limit}); {} requests ok and {} failed after it",
            after.ok, after.failed
        ),
    )
}

#[cfg(test)]
mod tests;
