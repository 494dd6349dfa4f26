//! The fixes AWS announced, each proven as a mechanism on real processes: one run of the 2012
//! scenario per fix on a small fleet, its actions read from the journal, its effect on stuck
//! volumes printed (whatever it is: that is the experiment's result, not a pass condition).

use std::path::Path;
use std::time::Duration;

use outage_lab_ebs_events::{AlarmKind, Event, JournalEntry, ProcessRole, Role};
use outage_lab_proto::report::Report;

use crate::support::{ScenarioRun, journal, report, wait_until_gone};

const RUN_LIMIT: Duration = Duration::from_secs(180);
const MIB: u64 = 1024 * 1024;

/// Runs the 2012 scenario on 6 servers with `extra` arguments; the run may fail its 2012
/// expectations (a fix changes the story) but never the harness.
fn run_with(extra: &[&str]) -> (Report, Vec<JournalEntry>, tempfile::TempDir) {
    let mut args = vec!["--servers", "6", "--seed", "11"];
    args.extend_from_slice(extra);
    let (done, out, tmp) = ScenarioRun::start("ebs-2012-10-22.yaml", &args).finish(RUN_LIMIT);
    assert!(
        matches!(done.code(), Some(0 | 1)),
        "exit {:?}\n{}",
        done.code(),
        done.output()
    );
    let left = wait_until_gone(out.to_str().unwrap(), Duration::from_secs(3));
    assert!(left.is_empty(), "left behind: {left:?}");
    let report = report(&out);
    println!(
        "{extra:?}: stuck volume peak {} of {}; fixes {:?}",
        report.volumes.stuck_peak, report.volumes.total, report.fixes
    );
    (report, journal(&out), tmp)
}

/// Every `fix_applied` of `fix`: (t_ms, server, detail).
fn actions<'a>(entries: &'a [JournalEntry], fix: &str) -> Vec<(u64, Option<&'a str>, &'a str)> {
    (entries.iter())
        .filter_map(|e| match &e.event {
            Event::FixApplied {
                fix: f,
                server,
                detail,
                ..
            } if f == fix => Some((e.t_ms, server.as_deref(), detail.as_str())),
            _ => None,
        })
        .collect()
}

fn stale_ids(report: &Report) -> Vec<&str> {
    (report.servers.iter())
        .filter(|s| s.stale)
        .map(|s| s.id.as_str())
        .collect()
}

fn agent_started_after(entries: &[JournalEntry], server: &str, after_ms: u64) -> bool {
    entries.iter().any(|e| {
        e.t_ms > after_ms
            && matches!(&e.event, Event::ProcessStarted { role, server: Some(s), .. } if role == Role::Agent.as_str() && s == server)
    })
}

fn config(out: &Path, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("config").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn leak_alarm_action_restarts_each_alarmed_agent_after_its_reaction_time() {
    let (report, entries, _tmp) = run_with(&["--fix", "leak_alarm_action"]);
    let restarts = actions(&entries, "leak_alarm_action");
    for id in stale_ids(&report) {
        let alarm = (entries.iter())
            .find_map(|e| match &e.event {
                Event::Alarm {
                    alarm: AlarmKind::Leak,
                    role: Some(ProcessRole::Agent),
                    server,
                    ..
                } if server == id => Some(e.t_ms),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no leak alarm on stale {id}"));
        let (at, _, detail) = *restarts
            .iter()
            .find(|(_, s, _)| *s == Some(id))
            .unwrap_or_else(|| panic!("{id} was not restarted: {restarts:?}"));
        assert!(at >= alarm + 2_000, "{id}: alarm {alarm}ms, restart {at}ms");
        assert!(
            detail.contains(&format!("leak alarm at {alarm}ms")),
            "{detail}"
        );
        assert!(
            agent_started_after(&entries, id, alarm),
            "no new agent on {id}"
        );
    }
    let fix = report
        .fixes
        .iter()
        .find(|f| f.name == "leak_alarm_action")
        .unwrap();
    assert_eq!(fix.actions as usize, restarts.len(), "{fix:?}");
}

#[test]
fn agent_memory_limit_has_the_kernel_kill_a_leaking_agent_and_restarts_it() {
    // The cgroup counts what is charged to the agent (its heap, not the binary's shared pages
    // RSS also counts): an idle agent is charged a few MiB in either build.
    let (report, entries, _tmp) = run_with(&["--set", "fixes.agent_memory_limit.limit=12MiB"]);
    let acts = actions(&entries, "agent_memory_limit");
    let (_, _, how) = acts.first().expect("the limit is journaled first");
    assert!(how.starts_with("in place: "), "{how}");
    let kills: Vec<_> = acts.iter().filter(|(_, s, _)| s.is_some()).collect();
    assert!(
        !kills.is_empty(),
        "no agent was killed at its limit: {acts:?}"
    );
    let stale = stale_ids(&report);
    for (at, server, detail) in &kills {
        let id = server.unwrap();
        assert!(stale.contains(&id), "a fresh agent hit the limit: {detail}");
        assert!(
            detail.contains("killed") && detail.contains("restarted"),
            "{detail}"
        );
        assert!(
            agent_started_after(&entries, id, at - 1),
            "{id} not restarted"
        );
        let exited = entries.iter().any(|e| {
            matches!(&e.event, Event::ProcessExited { name, expected: false, .. } if *name == format!("agent-{id}"))
        });
        assert!(exited, "no exit of agent-{id} before its restart");
    }
    // A kill the fix explains is not a crash.
    let stayed_up = crate::support::row(&report, "processes_stayed_up");
    assert!(stayed_up.passed, "{stayed_up:?}");
    // Bounded: no agent ever kept 12MiB of unsent reports.
    let most_retained = (entries.iter())
        .filter_map(|e| match &e.event {
            Event::AgentStats { retained_bytes, .. } => Some(*retained_bytes),
            _ => None,
        })
        .max()
        .unwrap();
    assert!(
        most_retained < 12 * MIB,
        "an agent retained {most_retained} bytes"
    );
}

#[test]
fn dns_verification_finds_the_stale_dns_server_and_pushes_the_record_again() {
    let (report, entries, _tmp) = run_with(&["--fix", "dns_verification"]);
    let repairs = actions(&entries, "dns_verification");
    let (at, _, detail) = *repairs.first().expect("the stale DNS server was found");
    assert!(detail.starts_with("dns-c answers 127."), "{detail}");
    assert!(detail.ends_with("record pushed again"), "{detail}");
    let repair_step = (entries.iter())
        .find_map(|e| match &e.event {
            Event::FaultInjected { action, .. } if action == "dns_repair" => Some(e.t_ms),
            _ => None,
        })
        .unwrap();
    assert!(at < repair_step, "found at {at}ms, after the repair step");
    // The stale agents then resolve the replacement, long before the repair step.
    let new: std::net::IpAddr = (entries.iter())
        .find_map(|e| match &e.event {
            Event::DnsRecordChanged { addrs, .. } => addrs.first().copied(),
            _ => None,
        })
        .unwrap();
    for id in stale_ids(&report) {
        let moved = entries.iter().any(|e| {
            e.t_ms > at
                && e.t_ms < repair_step
                && matches!(&e.event, Event::AgentResolved { server, addrs } if server == id && addrs == &[new])
        });
        assert!(moved, "stale {id} never resolved {new} after the re-push");
    }
}

#[test]
fn agent_bounded_retry_keeps_stale_agents_from_growing() {
    let (report, entries, tmp) = run_with(&["--fix", "agent_bounded_retry"]);
    let out = tmp.path().join("run");
    for id in stale_ids(&report) {
        let agent = config(&out, &format!("agent-{id}.json"));
        assert_eq!(agent["retry"]["mode"], "fixed", "{agent}");
        let s = report.servers.iter().find(|s| s.id == id).unwrap();
        let grew = s.agent.rss_peak_bytes.unwrap() - s.agent.rss_first_bytes.unwrap();
        assert!(
            grew <= 2 * MIB,
            "stale {id} grew {grew} bytes with bounded retry"
        );
        assert!(
            s.agent.failed_reports > 0,
            "stale {id} should still fail to report"
        );
    }
    let leak_alarms = entries
        .iter()
        .filter(|e| {
            matches!(
                &e.event,
                Event::Alarm {
                    alarm: AlarmKind::Leak,
                    ..
                }
            )
        })
        .count();
    assert_eq!(leak_alarms, 0);
}

#[test]
fn spare_capacity_places_volumes_with_more_room_to_fail_over_into() {
    let (report, _entries, tmp) = run_with(&["--fix", "spare_capacity"]);
    let control = config(&tmp.path().join("run"), "control.json");
    assert_eq!(control["placement_fill"], 0.375, "{control}");
    // 6 servers x 8 slots x 0.375 / 2 replicas.
    assert_eq!(report.volumes.total, 9, "{:?}", report.volumes);
    assert_eq!(
        report.volumes.failovers_without_capacity, 0,
        "{:?}",
        report.volumes
    );
}

#[test]
fn cache_aware_aggregate_alarm_counts_memory_net_of_the_storage_cache() {
    // A debug build's processes are larger: the threshold moves with them.
    let threshold = crate::support::calibration::net_threshold();
    let set = format!("fixes.cache_aware_aggregate_alarm.threshold={threshold}");
    let (report, entries, tmp) = run_with(&["--set", &set]);
    let watchdog = config(&tmp.path().join("run"), "watchdog.json");
    assert_eq!(watchdog["aggregate"]["net_of_cache"], true, "{watchdog}");
    let aggregate: Vec<(&str, &str)> = (entries.iter())
        .filter_map(|e| match &e.event {
            Event::Alarm {
                alarm: AlarmKind::CacheAwareAggregate,
                server,
                detail,
                ..
            } => Some((server.as_str(), detail.as_str())),
            _ => None,
        })
        .collect();
    assert!(!aggregate.is_empty(), "the net alarm never fired");
    let stale = stale_ids(&report);
    for (server, detail) in &aggregate {
        assert!(detail.contains("of storage cache ="), "{detail}");
        assert!(
            stale.contains(server),
            "net alarm on fresh {server}: {detail}"
        );
    }
}
