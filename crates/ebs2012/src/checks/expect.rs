//! The checks of the scenario's `expect:` section, one function per field (see
//! `crate::scenario::expect` for what each field means), and `acknowledged_writes_read_back`.

use outage_lab_ebs_events::AlarmKind;
use outage_lab_proto::ByteSize;
use outage_lab_proto::report::ExpectationResult;

use super::mib;
use crate::check::{CheckInput, result};
use crate::kinds::StepKind;
use crate::run_state::ServerState;
use crate::scenario::expect::{
    AggregateAlarmExpectation, FailoverCapacityExpectation, LeakAlarmExpectation,
    StuckVolumesExpectation,
};
use crate::steps::dns_update::observed_stale;

/// Checked whenever customers write: every acknowledged write reads back.
pub fn acknowledged_writes_read_back(input: &CheckInput<'_>) -> ExpectationResult {
    const NAME: &str = "acknowledged_writes_read_back";
    match input.writes {
        None => result(
            NAME,
            false,
            "the writes were never read back (the load or control did not run to the end)".into(),
        ),
        Some(Err(e)) => result(NAME, false, format!("could not read the writes back: {e}")),
        Some(Ok(c)) => {
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

pub fn stuck_volumes(input: &CheckInput<'_>, rule: StuckVolumesExpectation) -> ExpectationResult {
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

pub fn failover_capacity(
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

pub fn volumes_recover(input: &CheckInput<'_>, within: std::time::Duration) -> ExpectationResult {
    const NAME: &str = "volumes_recover_within";
    let v = &input.state.volumes;
    let last_step = input.state.last_injected_ms().unwrap_or(0);
    let limit = last_step + within.as_millis() as u64;
    let not_healthy = v
        .states
        .values()
        .filter(|s| **s != outage_lab_ebs_events::VolumeState::Healthy)
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

/// The moment before which an agent's memory is its baseline: the first fault, or the timeline's
/// start when there is none.
fn baseline_ms(input: &CheckInput<'_>) -> u64 {
    input
        .state
        .first_injected_ms()
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
    input
        .state
        .injected_at(StepKind::Restart)
        .unwrap_or(input.end_ms)
}

/// The observed stale share of the fleet is the expected one, to the nearest server.
pub fn stale_share(input: &CheckInput<'_>, share: f64) -> ExpectationResult {
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

/// Which agents a growth bound is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Behind a DNS server the update missed (as the plan decided).
    Stale,
    /// Every other agent.
    Fresh,
}

/// Which way a growth bound points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// Every agent of the group grew at least this much.
    AtLeast(ByteSize),
    /// No agent of the group grew more than this.
    AtMost(ByteSize),
}

/// Checks how much a group of agents (stale or fresh) grew above its baseline. Growth is the
/// highest sample after the first fault (until the first restart, for stale agents whose leak a
/// restart frees) minus the last sample before it.
pub fn agents_grow(
    input: &CheckInput<'_>,
    name: &str,
    group: Group,
    bound: Bound,
) -> ExpectationResult {
    let stale = group == Group::Stale;
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

/// The per-process leak alarm fired on no process at all, or on exactly the stale agents.
pub fn leak_alarm(input: &CheckInput<'_>, which: LeakAlarmExpectation) -> ExpectationResult {
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
    match which {
        LeakAlarmExpectation::None => result(
            "leak_alarm",
            fired.is_empty() && storage.is_empty(),
            format!(
                "leak alarm fired on {} agents and {} storage processes, expected none{}",
                fired.len(),
                storage.len(),
                list_suffix(&fired)
            ),
        ),
        LeakAlarmExpectation::ExactlyStaleAgents => {
            leak_alarm_on_stale_agents(input, &fired, &storage)
        }
    }
}

/// The leak alarm fired on every stale agent, on no fresh one and on no storage process, given
/// the servers whose agent (`fired`) and whose storage (`storage`) it fired on.
fn leak_alarm_on_stale_agents(
    input: &CheckInput<'_>,
    fired: &[&String],
    storage: &[&String],
) -> ExpectationResult {
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
    let passed =
        !stale.is_empty() && missed.is_empty() && false_alarms.is_empty() && storage.is_empty();
    let lead = leak_alarm_lead(input, &stale);
    result(
        "leak_alarm",
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

/// How long after the DNS update the leak alarm fired on the `stale` agents, shortest to
/// longest (`; fired A-Bms after the DNS update`); empty when it fired on none.
fn leak_alarm_lead(input: &CheckInput<'_>, stale: &[&String]) -> String {
    let delays: Vec<u64> = stale
        .iter()
        .filter_map(|id| input.state.servers.get(*id)?.leak_at_ms)
        .map(|t| t.saturating_sub(input.state.injected_at(StepKind::DnsUpdate).unwrap_or(0)))
        .collect();
    if delays.is_empty() {
        String::new()
    } else {
        format!(
            "; fired {}-{}ms after the DNS update",
            delays.iter().min().unwrap_or(&0),
            delays.iter().max().unwrap_or(&0)
        )
    }
}

pub fn aggregate_alarm(
    input: &CheckInput<'_>,
    rule: AggregateAlarmExpectation,
) -> ExpectationResult {
    let first_agg = input.state.first_aggregate_alarm_ms();
    let first_leak = input.state.first_leak_alarm_ms;
    let fired = input
        .state
        .servers
        .values()
        .filter(|s| s.aggregate_at_ms.is_some())
        .count();
    let name = "aggregate_alarm";
    // The run had one aggregate alarm: the 2012 one, or the cache-aware fix's in its place.
    let alarm = match input
        .state
        .first_alarm_ms
        .contains_key(&AlarmKind::CacheAwareAggregate)
    {
        true => "the cache-aware aggregate alarm",
        false => "the 2012 aggregate alarm",
    };
    match rule {
        AggregateAlarmExpectation::Never => result(
            name,
            first_agg.is_none(),
            format!("{alarm} fired on {fired} servers, expected never"),
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
                    "{alarm} first fired at {agg}ms on {fired} servers; first leak alarm {}",
                    leak.map_or("never".to_owned(), |l| format!("at {l}ms"))
                ),
            };
            result(name, passed, detail)
        }
    }
}

pub fn memory_recovers(input: &CheckInput<'_>, within: ByteSize) -> ExpectationResult {
    let name = "memory_recovers_within";
    let Some(restart) = input.state.injected_at(StepKind::Restart) else {
        return result(
            name,
            false,
            "no restart was injected (the timeline has none, or the run stopped before it), so nothing can recover".into(),
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
