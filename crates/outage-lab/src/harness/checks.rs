//! Expectations: what must hold at the end of a run, checked against what really happened.
//!
//! Two built-in checks always run, because a fault that silently did nothing must never pass:
//! `processes_stayed_up` (no process of the run died unasked) and, when the timeline has a
//! `dns_update`, `fault_took_effect` (every agent behind a missed DNS server really kept the dead
//! address and failed to report; every other agent moved to the replacement). Then one check per
//! field present in the scenario's `expect:`.

use std::net::IpAddr;

use outage_lab_proto::ByteSize;
use outage_lab_proto::report::ExpectationResult;

use super::load::WriteCheck;
use super::state::{RunState, ServerState};
use crate::plan::Plan;
use crate::scenario::{
    AggregateAlarmExpectation, FailoverCapacityExpectation, LeakAlarmExpectation, Scenario,
    StuckVolumesExpectation,
};

/// Everything a check needs.
#[derive(Debug)]
pub struct CheckInput<'a> {
    /// The scenario.
    pub scenario: &'a Scenario,
    /// The address plan (who is stale).
    pub plan: &'a Plan,
    /// What happened.
    pub state: &'a RunState,
    /// When the timeline ended (ms since run start).
    pub end_ms: u64,
    /// Every acknowledged write read back at the end; `None` when the run had no load.
    pub writes: Option<&'a Result<WriteCheck, String>>,
}

/// Runs every check; the result is in report order.
pub fn check_all(input: &CheckInput<'_>) -> Vec<ExpectationResult> {
    let mut out = vec![processes_stayed_up(input)];
    if input.state.fault_ms("dns_update").is_some() {
        out.push(fault_took_effect(input));
    }
    let expect = &input.scenario.expect;
    if let Some(share) = &expect.stale_share {
        out.push(stale_share(input, share.value));
    }
    let growth_bounds = [
        (
            "stale_agents_grow_at_least",
            true,
            expect.stale_agents_grow_at_least.map(Bound::AtLeast),
        ),
        (
            "stale_agents_grow_at_most",
            true,
            expect.stale_agents_grow_at_most.map(Bound::AtMost),
        ),
        (
            "fresh_agents_grow_at_most",
            false,
            expect.fresh_agents_grow_at_most.map(Bound::AtMost),
        ),
    ];
    for (name, stale, bound) in growth_bounds {
        if let Some(bound) = bound {
            out.push(agents_grow(input, name, stale, bound));
        }
    }
    if let Some(which) = expect.leak_alarm {
        out.push(leak_alarm(input, which));
    }
    if let Some(rule) = expect.aggregate_alarm {
        out.push(aggregate_alarm(input, rule));
    }
    if let Some(within) = expect.memory_recovers_within {
        out.push(memory_recovers(input, within));
    }
    if let Some(writes) = input.writes {
        out.push(acknowledged_writes_read_back(writes));
    }
    if let Some(rule) = expect.stuck_volumes {
        out.push(stuck_volumes(input, rule));
    }
    if let Some(rule) = expect.failover_capacity {
        out.push(failover_capacity(input, rule));
    }
    if let Some(within) = &expect.volumes_recover_within {
        out.push(volumes_recover(input, within.value.get()));
    }
    out
}

/// Always checked when there was load: every acknowledged write reads back.
fn acknowledged_writes_read_back(writes: &Result<WriteCheck, String>) -> ExpectationResult {
    const NAME: &str = "acknowledged_writes_read_back";
    match writes {
        Err(e) => result(NAME, false, format!("could not read the writes back: {e}")),
        Ok(c) => {
            let passed = c.lost.is_empty() && c.unreadable.is_empty();
            let mut detail = format!(
                "{} blocks with acknowledged writes read back: {} lost, {} unreadable",
                c.checked,
                c.lost.len(),
                c.unreadable.len()
            );
            for ((v, b), acked, got) in c.lost.iter().take(5) {
                detail.push_str(&format!(
                    "; {v} block {b}: acknowledged {acked}, read {got}"
                ));
            }
            for (v, b) in c.unreadable.iter().take(5) {
                detail.push_str(&format!("; {v} block {b}: no replica served it"));
            }
            result(NAME, passed, detail)
        }
    }
}

fn stuck_volumes(input: &CheckInput<'_>, rule: StuckVolumesExpectation) -> ExpectationResult {
    const NAME: &str = "stuck_volumes";
    let v = &input.state.volumes;
    let peak = format!(
        "stuck peak {} of {} volumes{}",
        v.stuck_peak,
        v.states.len(),
        v.stuck_peak_at_ms
            .map(|t| format!(" at {t}ms"))
            .unwrap_or_default()
    );
    if rule == StuckVolumesExpectation::None {
        return result(NAME, v.stuck_peak == 0, peak);
    }
    if v.stuck_peak == 0 {
        return result(
            NAME,
            false,
            format!("{peak}; expected some volumes to get stuck"),
        );
    }
    let stale: std::collections::BTreeSet<&str> =
        input.plan.stale_servers().map(|s| s.id.as_str()).collect();
    let mut problems = Vec::new();
    let mut lead_ms = Vec::new();
    for (id, s) in &input.state.servers {
        let Some(stuck_at) = s.first_stuck_at_ms else {
            continue;
        };
        if stale.contains(id.as_str()) {
            match s.leak_at_ms {
                Some(alarm) if alarm < stuck_at => lead_ms.push(stuck_at - alarm),
                Some(alarm) => problems.push(format!(
                    "{id}: leak alarm at {alarm}ms, not before its first stuck volume at {stuck_at}ms"
                )),
                None => problems.push(format!(
                    "{id}: stuck at {stuck_at}ms with no leak alarm"
                )),
            }
        } else if !s
            .took_failover_from
            .iter()
            .any(|f| stale.contains(f.as_str()))
        {
            problems.push(format!(
                "{id}: a fresh server that took no failover load from a stale one had a stuck volume at {stuck_at}ms"
            ));
        }
    }
    let stuck_servers = input
        .state
        .servers
        .values()
        .filter(|s| s.first_stuck_at_ms.is_some())
        .count();
    let lead = lead_ms.iter().min().map_or_else(String::new, |min| {
        format!("; the leak alarm led the first stuck volume by at least {min}ms")
    });
    let detail = format!("{peak}; {stuck_servers} servers had stuck volumes{lead}");
    if problems.is_empty() {
        result(NAME, true, detail)
    } else {
        result(NAME, false, format!("{detail}; {}", problems.join("; ")))
    }
}

fn failover_capacity(
    input: &CheckInput<'_>,
    rule: FailoverCapacityExpectation,
) -> ExpectationResult {
    let v = &input.state.volumes;
    let detail = format!(
        "{} failovers, {} found no healthy server with a free slot",
        v.failovers_attempted, v.failovers_without_capacity
    );
    let passed = match rule {
        FailoverCapacityExpectation::RunsOut => v.failovers_without_capacity > 0,
        FailoverCapacityExpectation::Suffices => v.failovers_without_capacity == 0,
    };
    result("failover_capacity", passed, detail)
}

fn volumes_recover(input: &CheckInput<'_>, within: std::time::Duration) -> ExpectationResult {
    const NAME: &str = "volumes_recover_within";
    let v = &input.state.volumes;
    let last_step = input.state.faults.last().map_or(0, |(_, t)| *t);
    let limit = last_step + within.as_millis() as u64;
    let not_healthy = v
        .states
        .values()
        .filter(|s| **s != outage_lab_proto::VolumeState::Healthy)
        .count();
    if not_healthy > 0 {
        return result(
            NAME,
            false,
            format!(
                "{not_healthy} volumes not healthy at the end ({} stuck)",
                v.stuck_now
            ),
        );
    }
    match v.recovered_at_ms {
        None => result(NAME, true, "every volume stayed healthy".into()),
        Some(t) if t <= limit.max(last_step) => result(
            NAME,
            true,
            format!(
                "every volume healthy again at {t}ms, {}ms after the last step (limit {}ms)",
                t.saturating_sub(last_step),
                within.as_millis()
            ),
        ),
        Some(t) => result(
            NAME,
            false,
            format!(
                "every volume healthy again only at {t}ms, {}ms after the last step (limit {}ms)",
                t.saturating_sub(last_step),
                within.as_millis()
            ),
        ),
    }
}

fn result(name: &str, passed: bool, detail: String) -> ExpectationResult {
    ExpectationResult {
        name: name.to_owned(),
        passed,
        detail,
    }
}

fn mib(bytes: i128) -> String {
    format!("{:.1}MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The moment before which an agent's memory is its baseline: the first fault, or the timeline's
/// start when there is none.
fn baseline_ms(input: &CheckInput<'_>) -> u64 {
    input
        .state
        .first_fault_ms()
        .or(input.state.fleet_up_ms)
        .unwrap_or(0)
}

/// Baseline RSS: the last sample before the first fault (or the first sample at all).
fn baseline(server: &ServerState, at_ms: u64) -> Option<u64> {
    server
        .agent_rss_before(at_ms.max(1))
        .or_else(|| server.agent_rss().next().map(|(_, b)| b))
}

/// When the leak phase ends for growth checks: the first restart, or the end of the timeline.
fn leak_phase_end(input: &CheckInput<'_>) -> u64 {
    input.state.fault_ms("restart").unwrap_or(input.end_ms)
}

fn processes_stayed_up(input: &CheckInput<'_>) -> ExpectationResult {
    let crashes = &input.state.crashes;
    let detail = if crashes.is_empty() {
        "no process of the run exited unasked".to_owned()
    } else {
        crashes
            .iter()
            .map(|c| format!("{} exited at {}ms ({})", c.name, c.t_ms, c.status))
            .collect::<Vec<_>>()
            .join("; ")
    };
    result("processes_stayed_up", crashes.is_empty(), detail)
}

/// Which servers really behaved stale: at the moment DNS was repaired (or the end), their agent
/// still held the old collector address and had failed reports.
fn observed_stale(input: &CheckInput<'_>) -> Vec<String> {
    let old = IpAddr::V4(input.plan.collector_old);
    let at = input.state.fault_ms("dns_repair").unwrap_or(input.end_ms);
    input
        .state
        .servers
        .iter()
        .filter(|(_, s)| s.resolved_at(at) == Some(&[old][..]) && s.failed_reports() > 0)
        .map(|(id, _)| id.clone())
        .collect()
}

fn fault_took_effect(input: &CheckInput<'_>) -> ExpectationResult {
    let old = IpAddr::V4(input.plan.collector_old);
    let new = IpAddr::V4(input.plan.collector_new);
    let update = input.state.fault_ms("dns_update").unwrap_or(0);
    let at = input.state.fault_ms("dns_repair").unwrap_or(input.end_ms);
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
            let moved = state
                .resolved
                .iter()
                .any(|(t, a)| *t >= update && a.as_slice() == [new]);
            if !moved {
                problems.push(format!(
                    "{} (fresh, via {}) never resolved the replacement {new}",
                    planned.id, planned.dns_server
                ));
            }
        }
    }
    let stale = input.plan.stale_servers().count();
    let passed = problems.is_empty();
    let detail = if passed {
        format!(
            "{stale} agents behind missed DNS servers kept {old} and failed; {} others moved to {new}",
            input.plan.servers.len() - stale
        )
    } else {
        let more = problems.len().saturating_sub(5);
        problems.truncate(5);
        format!(
            "{}{}",
            problems.join("; "),
            if more > 0 {
                format!("; and {more} more")
            } else {
                String::new()
            }
        )
    };
    result("fault_took_effect", passed, detail)
}

fn stale_share(input: &CheckInput<'_>, share: f64) -> ExpectationResult {
    let n = input.plan.servers.len();
    let observed = observed_stale(input).len();
    let exact = n as f64 * share;
    // Rounded to the nearest server; the slack lets a scenario write 1/3 as 0.3333.
    let passed = (observed as f64 - exact).abs() <= 0.5 + SHARE_SLACK * n as f64;
    result(
        "stale_share",
        passed,
        format!(
            "{observed} of {n} servers stale (observed), expected {share} of {n} = {exact:.2}, rounded to the nearest"
        ),
    )
}

/// How far (as a fraction of the fleet) a written share may be from the exact one.
const SHARE_SLACK: f64 = 0.001;

/// An agent's (baseline, peak) memory: the baseline before `base_ms`, the peak in
/// `[base_ms, to_ms)`.
fn growth(server: &ServerState, base_ms: u64, to_ms: u64) -> Option<(u64, u64)> {
    let base = baseline(server, base_ms)?;
    let peak = server.agent_peak_between(base_ms, to_ms).unwrap_or(base);
    Some((base, peak))
}

/// Which way a growth bound points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// Every agent of the group grew at least this much.
    AtLeast(ByteSize),
    /// No agent of the group grew more than this.
    AtMost(ByteSize),
}

/// Checks how much a group of agents (stale or fresh) grew above its baseline. Growth is the
/// highest sample after the first fault (until the first restart, for stale agents whose leak a
/// restart frees) minus the last sample before it.
fn agents_grow(input: &CheckInput<'_>, name: &str, stale: bool, bound: Bound) -> ExpectationResult {
    let base_ms = baseline_ms(input);
    let end = if stale {
        leak_phase_end(input)
    } else {
        input.end_ms + 1
    };
    let group = if stale { "stale" } else { "fresh" };
    let mut grown: Vec<(String, i128)> = Vec::new();
    let mut missing = Vec::new();
    for planned in input.plan.servers.iter().filter(|s| s.stale == stale) {
        match input
            .state
            .servers
            .get(&planned.id)
            .and_then(|s| growth(s, base_ms, end))
        {
            Some((base, peak)) => {
                grown.push((planned.id.clone(), i128::from(peak) - i128::from(base)))
            }
            None => missing.push(planned.id.clone()),
        }
    }
    if !missing.is_empty() {
        return result(
            name,
            false,
            format!(
                "no memory samples for {group} agents {}",
                missing.join(", ")
            ),
        );
    }
    let (Some(smallest), Some(largest)) = (
        grown.iter().min_by_key(|g| g.1),
        grown.iter().max_by_key(|g| g.1),
    ) else {
        return match bound {
            Bound::AtLeast(_) => result(
                name,
                false,
                format!("no {group} agents in this run, so none could grow"),
            ),
            Bound::AtMost(_) => result(name, true, format!("no {group} agents in this run")),
        };
    };
    let n = grown.len();
    match bound {
        Bound::AtLeast(min) => result(
            name,
            smallest.1 >= i128::from(min.bytes()),
            format!(
                "smallest growth of {n} {group} agents: +{} ({}); expected at least {min}",
                mib(smallest.1),
                smallest.0
            ),
        ),
        Bound::AtMost(max) => result(
            name,
            largest.1 <= i128::from(max.bytes()),
            format!(
                "largest growth of {n} {group} agents: +{} ({}); expected at most {max}",
                mib(largest.1),
                largest.0
            ),
        ),
    }
}

fn leak_alarm(input: &CheckInput<'_>, which: LeakAlarmExpectation) -> ExpectationResult {
    let fired: Vec<&String> = input
        .state
        .servers
        .iter()
        .filter(|(_, s)| s.leak_at_ms.is_some())
        .map(|(id, _)| id)
        .collect();
    let storage: Vec<&String> = input
        .state
        .servers
        .iter()
        .filter(|(_, s)| s.storage_leak_at_ms.is_some())
        .map(|(id, _)| id)
        .collect();
    let name = "leak_alarm";
    match which {
        LeakAlarmExpectation::None => result(
            name,
            fired.is_empty() && storage.is_empty(),
            format!(
                "leak alarm fired on {} agents and {} storage processes, expected none{}",
                fired.len(),
                storage.len(),
                list_suffix(&fired)
            ),
        ),
        LeakAlarmExpectation::ExactlyStaleAgents => {
            let stale: Vec<&String> = input.plan.stale_servers().map(|s| &s.id).collect();
            let missed: Vec<&String> = stale
                .iter()
                .copied()
                .filter(|id| !fired.contains(id))
                .collect();
            let false_alarms: Vec<&String> = fired
                .iter()
                .copied()
                .filter(|id| !stale.contains(id))
                .collect();
            let passed = !stale.is_empty()
                && missed.is_empty()
                && false_alarms.is_empty()
                && storage.is_empty();
            let delays: Vec<u64> = stale
                .iter()
                .filter_map(|id| input.state.servers.get(*id)?.leak_at_ms)
                .map(|t| t.saturating_sub(input.state.fault_ms("dns_update").unwrap_or(0)))
                .collect();
            let lead = if delays.is_empty() {
                String::new()
            } else {
                format!(
                    "; fired {}-{}ms after the DNS update",
                    delays.iter().min().unwrap_or(&0),
                    delays.iter().max().unwrap_or(&0)
                )
            };
            result(
                name,
                passed,
                format!(
                    "fired on {}/{} stale agents, {} fresh agents, {} storage processes{lead}{}{}",
                    stale.len() - missed.len(),
                    stale.len(),
                    false_alarms.len(),
                    storage.len(),
                    if missed.is_empty() {
                        String::new()
                    } else {
                        format!("; missed {}", join(&missed))
                    },
                    if false_alarms.is_empty() {
                        String::new()
                    } else {
                        format!("; false alarms on {}", join(&false_alarms))
                    },
                ),
            )
        }
    }
}

fn aggregate_alarm(input: &CheckInput<'_>, rule: AggregateAlarmExpectation) -> ExpectationResult {
    let first_agg = input.state.first_aggregate_alarm_ms();
    let first_leak = input.state.first_leak_alarm_ms;
    let fired = input
        .state
        .servers
        .values()
        .filter(|s| s.aggregate_at_ms.is_some())
        .count();
    let name = "aggregate_alarm";
    match rule {
        AggregateAlarmExpectation::Never => result(
            name,
            first_agg.is_none(),
            format!("the 2012 aggregate alarm fired on {fired} servers, expected never"),
        ),
        AggregateAlarmExpectation::NotBeforeLeakAlarm => {
            let passed = match (first_agg, first_leak) {
                (None, _) => true,
                (Some(agg), Some(leak)) => agg >= leak,
                (Some(_), None) => false,
            };
            let detail = match (first_agg, first_leak) {
                (None, Some(leak)) => format!(
                    "the 2012 aggregate alarm stayed silent; the first leak alarm fired at {leak}ms"
                ),
                (None, None) => "neither alarm fired".to_owned(),
                (Some(agg), leak) => format!(
                    "the 2012 aggregate alarm first fired at {agg}ms on {fired} servers; first leak alarm {}",
                    leak.map_or("never".to_owned(), |l| format!("at {l}ms"))
                ),
            };
            result(name, passed, detail)
        }
    }
}

fn memory_recovers(input: &CheckInput<'_>, within: ByteSize) -> ExpectationResult {
    let name = "memory_recovers_within";
    let Some(restart) = input.state.fault_ms("restart") else {
        return result(
            name,
            false,
            "the timeline has no restart, so nothing can recover".into(),
        );
    };
    let base_ms = baseline_ms(input);
    let mut worst: Option<(String, i128)> = None;
    let mut restarted = 0;
    for (id, server) in &input.state.servers {
        if server.agents.len() < 2 {
            continue;
        }
        restarted += 1;
        let (Some(base), Some(last)) = (
            baseline(server, base_ms),
            server
                .agents
                .last()
                .and_then(|a| a.rss.last())
                .map(|(_, b)| *b),
        ) else {
            return result(
                name,
                false,
                format!("{id}: no memory samples after the restart at {restart}ms"),
            );
        };
        let above = i128::from(last) - i128::from(base);
        if worst.as_ref().is_none_or(|(_, w)| above > *w) {
            worst = Some((id.clone(), above));
        }
    }
    match worst {
        None => result(name, false, "no agent was restarted".into()),
        Some((id, above)) => result(
            name,
            above <= i128::from(within.bytes()),
            format!(
                "{restarted} restarted agents; largest last-minus-baseline {} ({id}), expected at most {within}",
                mib(above)
            ),
        ),
    }
}

fn join(ids: &[&String]) -> String {
    let mut v: Vec<&str> = ids.iter().map(|s| s.as_str()).take(8).collect();
    if ids.len() > 8 {
        v.push("...");
    }
    v.join(", ")
}

fn list_suffix(ids: &[&String]) -> String {
    if ids.is_empty() {
        String::new()
    } else {
        format!(" (fired on {})", join(ids))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use outage_lab_proto::{AlarmKind, Event, JournalEntry, ProcessRole, RssSample};

    use super::*;

    const SCENARIO: &str = "\
name: t
duration: 20s
fleet: { servers: 3 }
dns: { servers: [dns-a, dns-b, dns-c] }
timeline:
  - replace_collector: { at: 1s }
  - dns_update: { at: 1s, propagate_to: [dns-a, dns-b] }
expect:
  stale_share: 0.3333
  stale_agents_grow_at_least: 8MiB
  fresh_agents_grow_at_most: 2MiB
  leak_alarm: exactly_stale_agents
  aggregate_alarm: not_before_leak_alarm
";
    const MIB: u64 = 1024 * 1024;

    /// A synthetic run: three servers, the one behind dns-c stale. `tweak` breaks one thing.
    struct Fixture {
        scenario: Scenario,
        plan: Plan,
        entries: Vec<JournalEntry>,
    }

    impl Fixture {
        fn new() -> Self {
            let scenario = Scenario::parse(SCENARIO, "t.yaml").expect("valid");
            let stale: BTreeSet<String> = scenario.stale_dns_names();
            let plan = Plan::new(50, 1, 3, &scenario.dns_names(), &stale);
            let mut f = Self {
                scenario,
                plan,
                entries: Vec::new(),
            };
            let old = IpAddr::V4(f.plan.collector_old);
            let new = IpAddr::V4(f.plan.collector_new);
            let servers = f.plan.servers.clone();
            for (i, s) in servers.iter().enumerate() {
                let pid = 100 + i as u32;
                f.push(
                    0,
                    &format!("agent-{}", s.id),
                    None,
                    Event::ProcessStarted {
                        name: format!("agent-{}", s.id),
                        role: "agent".into(),
                        pid,
                    },
                );
                f.push(
                    10,
                    "x",
                    Some(pid),
                    Event::AgentResolved {
                        server: s.id.clone(),
                        addrs: vec![old],
                    },
                );
            }
            f.push(
                500,
                "harness",
                None,
                Event::Phase {
                    name: "timeline".into(),
                    detail: String::new(),
                },
            );
            f.push(
                1000,
                "harness",
                None,
                Event::FaultInjected {
                    action: "replace_collector".into(),
                    detail: String::new(),
                },
            );
            f.push(
                1000,
                "harness",
                None,
                Event::FaultInjected {
                    action: "dns_update".into(),
                    detail: String::new(),
                },
            );
            for t in (0..20_000).step_by(250) {
                let samples = servers
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let leaked = if s.stale && t > 1000 {
                            (t - 1000) * 640 * 1024 / 1000
                        } else {
                            0
                        };
                        RssSample {
                            server: s.id.clone(),
                            role: ProcessRole::Agent,
                            pid: 100 + i as u32,
                            rss_bytes: 4 * MIB + leaked,
                        }
                    })
                    .collect();
                f.push(t, "watchdog", None, Event::RssSweep { samples });
            }
            for (i, s) in servers.iter().enumerate() {
                let pid = 100 + i as u32;
                if s.stale {
                    f.push(
                        6000,
                        "watchdog",
                        None,
                        Event::Alarm {
                            alarm: AlarmKind::Leak,
                            server: s.id.clone(),
                            role: Some(ProcessRole::Agent),
                            pid: Some(pid),
                            detail: String::new(),
                        },
                    );
                    f.push(
                        19_000,
                        "x",
                        Some(pid),
                        Event::AgentStats {
                            server: s.id.clone(),
                            ok_reports: 5,
                            failed_reports: 180,
                            pending_reports: 180,
                            retained_bytes: 11 * MIB,
                        },
                    );
                } else {
                    f.push(
                        2100,
                        "x",
                        Some(pid),
                        Event::AgentResolved {
                            server: s.id.clone(),
                            addrs: vec![new],
                        },
                    );
                }
            }
            f
        }

        fn push(&mut self, t_ms: u64, source: &str, pid: Option<u32>, event: Event) {
            self.entries.push(JournalEntry {
                t_ms,
                source: source.into(),
                source_pid: pid,
                event,
            });
        }

        fn check(&self) -> Vec<ExpectationResult> {
            let mut entries = self.entries.clone();
            entries.sort_by_key(|e| e.t_ms);
            let mut state = RunState::with_servers(self.plan.servers.iter().map(|s| s.id.as_str()));
            for e in &entries {
                state.apply(e);
            }
            check_all(&CheckInput {
                scenario: &self.scenario,
                plan: &self.plan,
                state: &state,
                end_ms: 20_000,
                writes: None,
            })
        }

        fn stale_id(&self) -> String {
            self.plan
                .stale_servers()
                .next()
                .expect("one stale server")
                .id
                .clone()
        }

        fn fresh_id(&self) -> String {
            self.plan
                .servers
                .iter()
                .find(|s| !s.stale)
                .expect("fresh")
                .id
                .clone()
        }
    }

    fn verdict(results: &[ExpectationResult], name: &str) -> bool {
        results
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no {name} in {results:?}"))
            .passed
    }

    #[test]
    fn the_2012_shape_passes_every_check() {
        let results = Fixture::new().check();
        assert!(results.iter().all(|r| r.passed), "{results:#?}");
        assert_eq!(results.len(), 7);
    }

    #[test]
    fn a_stale_agent_that_resolved_the_new_address_means_the_fault_did_not_take_effect() {
        let mut f = Fixture::new();
        let id = f.stale_id();
        let new = IpAddr::V4(f.plan.collector_new);
        f.push(
            3000,
            "x",
            None,
            Event::AgentResolved {
                server: id,
                addrs: vec![new],
            },
        );
        let results = f.check();
        assert!(!verdict(&results, "fault_took_effect"));
        assert!(
            !verdict(&results, "stale_share"),
            "the observed stale count drops to 0"
        );
    }

    #[test]
    fn a_fresh_agent_that_never_moved_means_the_fault_did_not_take_effect() {
        let mut f = Fixture::new();
        let id = f.fresh_id();
        f.entries.retain(|e| !matches!(&e.event, Event::AgentResolved { server, .. } if *server == id && e.t_ms > 1000));
        assert!(!verdict(&f.check(), "fault_took_effect"));
    }

    #[test]
    fn a_leak_alarm_on_a_fresh_agent_or_a_storage_process_fails_the_leak_check() {
        let mut f = Fixture::new();
        let fresh = f.fresh_id();
        f.push(
            7000,
            "watchdog",
            None,
            Event::Alarm {
                alarm: AlarmKind::Leak,
                server: fresh,
                role: Some(ProcessRole::Agent),
                pid: None,
                detail: String::new(),
            },
        );
        assert!(!verdict(&f.check(), "leak_alarm"));

        let mut f = Fixture::new();
        let stale = f.stale_id();
        f.push(
            7000,
            "watchdog",
            None,
            Event::Alarm {
                alarm: AlarmKind::Leak,
                server: stale,
                role: Some(ProcessRole::Storage),
                pid: None,
                detail: String::new(),
            },
        );
        assert!(!verdict(&f.check(), "leak_alarm"));
    }

    #[test]
    fn a_missed_stale_agent_fails_the_leak_check() {
        let mut f = Fixture::new();
        f.entries
            .retain(|e| !matches!(e.event, Event::Alarm { .. }));
        let results = f.check();
        assert!(!verdict(&results, "leak_alarm"));
        // With no leak alarm at all, the aggregate check has nothing to compare against: silent is fine.
        assert!(verdict(&results, "aggregate_alarm"));
    }

    #[test]
    fn an_aggregate_alarm_before_the_first_leak_alarm_fails() {
        let mut f = Fixture::new();
        let fresh = f.fresh_id();
        f.push(
            2000,
            "watchdog",
            None,
            Event::Alarm {
                alarm: AlarmKind::Aggregate,
                server: fresh,
                role: None,
                pid: None,
                detail: String::new(),
            },
        );
        assert!(!verdict(&f.check(), "aggregate_alarm"));
    }

    #[test]
    fn growth_below_the_bound_fails_and_growth_above_the_fresh_limit_fails() {
        let mut f = Fixture::new();
        f.scenario.expect.stale_agents_grow_at_least = Some(ByteSize::mib(64));
        assert!(!verdict(&f.check(), "stale_agents_grow_at_least"));

        let mut f = Fixture::new();
        let fresh = f.fresh_id();
        let pid = f
            .plan
            .servers
            .iter()
            .position(|s| s.id == fresh)
            .expect("index") as u32
            + 100;
        f.push(
            15_000,
            "watchdog",
            None,
            Event::RssSweep {
                samples: vec![RssSample {
                    server: fresh,
                    role: ProcessRole::Agent,
                    pid,
                    rss_bytes: 7 * MIB,
                }],
            },
        );
        assert!(!verdict(&f.check(), "fresh_agents_grow_at_most"));
    }

    #[test]
    fn a_process_that_died_unasked_fails_the_run() {
        let mut f = Fixture::new();
        f.push(
            5000,
            "storage-s000",
            Some(7),
            Event::ProcessExited {
                name: "storage-s000".into(),
                pid: 7,
                status: "killed by signal 9".into(),
                expected: false,
            },
        );
        let results = f.check();
        assert!(!verdict(&results, "processes_stayed_up"));
        assert!(results[0].detail.contains("storage-s000"));
    }

    #[test]
    fn memory_recovery_needs_a_restart_in_the_timeline() {
        let mut f = Fixture::new();
        f.scenario.expect.memory_recovers_within = Some(ByteSize::mib(2));
        let results = f.check();
        assert!(!verdict(&results, "memory_recovers_within"));
    }
}
