//! Whole scenario runs: the causal chain of 2012 happening to real processes.

use std::time::Duration;

use outage_lab_ebs_events::{Event, EventKind, JournalEntry, Role};
use outage_lab_proto::RunPhase;
use outage_lab_proto::report::Verdict;

use crate::support::{
    ScenarioRun, assert_passed, journal, poll_until, report, row, wait_for_journal, wait_until_gone,
};

const MIB: i64 = 1024 * 1024;
const RUN_LIMIT: Duration = Duration::from_secs(180);

fn growth(first: Option<u64>, peak: Option<u64>) -> i64 {
    i64::try_from(peak.unwrap()).unwrap() - i64::try_from(first.unwrap()).unwrap()
}

#[test]
fn stale_agents_leak_and_fresh_agents_do_not() {
    let (done, out, _tmp) =
        ScenarioRun::start("ebs-2012-10-22.yaml", &["--servers", "6", "--seed", "11"])
            .finish(RUN_LIMIT);
    assert_passed(&done, &out);
    assert!(done.stdout.contains("verdict: PASS"), "{}", done.output());
    let report = report(&out);
    assert_eq!(report.verdict, Verdict::Pass);
    assert_eq!(report.seed, 11);
    assert_eq!(report.servers.len(), 6);

    // A third of six servers sit behind the DNS server the update missed.
    let stale: Vec<_> = report.servers.iter().filter(|s| s.stale).collect();
    assert_eq!(stale.len(), 2, "{report:#?}");
    for s in &report.servers {
        let grew = growth(s.agent.rss_first_bytes, s.agent.rss_peak_bytes);
        if s.stale {
            assert_eq!(s.dns_server, "dns-c");
            assert!(grew >= 8 * MIB, "stale {} grew only {grew} bytes", s.id);
            assert!(s.agent.failed_reports > 0, "stale {} never failed", s.id);
            assert!(
                s.alarms.leak_at_ms.is_some(),
                "no leak alarm on stale {}",
                s.id
            );
            // The restart freed it: the last sample is back near the first.
            let after = growth(s.agent.rss_first_bytes, s.agent.rss_last_bytes);
            assert!(
                after <= 2 * MIB,
                "stale {} still {after} bytes above its start",
                s.id
            );
        } else {
            assert!(grew <= 2 * MIB, "fresh {} grew {grew} bytes", s.id);
            assert!(
                s.alarms.leak_at_ms.is_none(),
                "false leak alarm on fresh {}",
                s.id
            );
        }
        assert!(
            s.alarms.storage_leak_at_ms.is_none(),
            "false leak alarm on storage {}",
            s.id
        );
    }
    // The 2012 alarm did not see it coming: silent at least until the leak alarm had fired.
    // (Release builds keep it silent throughout; a debug build's larger processes can push a
    // leaking server over the threshold near the end.)
    let first_leak = report
        .servers
        .iter()
        .filter_map(|s| s.alarms.leak_at_ms)
        .min()
        .unwrap();
    for s in &report.servers {
        if let Some(agg) = s.alarms.aggregate_at_ms {
            assert!(
                agg >= first_leak,
                "aggregate alarm on {} at {agg}ms before the first leak alarm at {first_leak}ms",
                s.id
            );
        }
    }
    assert!(crate::support::row(&report, "fault_took_effect").passed);

    // The second half: leaking servers stop serving I/O, failover runs out of room, volumes get
    // stuck, and every one recovers after the repair without losing an acknowledged write.
    let v = &report.volumes;
    assert!(v.stuck_peak > 0, "{v:?}");
    assert!(v.failovers_without_capacity > 0, "{v:?}");
    assert_eq!(v.stuck_final, 0, "{v:?}");
    assert_eq!(v.lost_acknowledged_writes, 0, "{v:?}");
    assert!(v.acknowledged_writes > 100, "{v:?}");
    assert!(v.recovered_at_ms.is_some(), "{v:?}");
    crate::support::assert_valid_junit(&out.join("junit.xml"));
    assert!(report.load.requests > 1000, "{:?}", report.load);
    for s in &report.servers {
        if s.stale {
            let degraded = s
                .degraded_at_ms
                .expect("a stale server stopped serving I/O");
            let alarm = s.alarms.leak_at_ms.expect("leak alarm");
            assert!(
                alarm < degraded,
                "{}: alarm {alarm}ms, degraded {degraded}ms",
                s.id
            );
            if let Some(stuck) = s.first_stuck_at_ms {
                assert!(alarm < stuck, "{}: alarm {alarm}ms, stuck {stuck}ms", s.id);
            }
        } else {
            assert_eq!(s.degraded_at_ms, None, "fresh {} stopped serving I/O", s.id);
        }
    }
    let journal = crate::support::journal(&out);
    let kinds = |k: EventKind| journal.iter().filter(|e| e.event.kind() == k).count();
    assert!(kinds(EventKind::VolumeChanged) > 0);
    assert!(kinds(EventKind::Failover) > 0 && kinds(EventKind::LoadStats) > 0);
    assert!(wait_until_gone(out.to_str().unwrap(), Duration::from_secs(3)).is_empty());
}

#[test]
fn spare_failover_capacity_means_fewer_stuck_volumes_at_the_same_seed() {
    // The same seed: the same faults hit the same servers at the same lab times. One after the
    // other, so the two runs do not starve each other (and a third test's run) of CPU.
    let args = ["--servers", "6", "--seed", "11"];
    let (tight_done, tight_out, _t1) =
        ScenarioRun::start("ebs-2012-10-22.yaml", &args).finish(RUN_LIMIT);
    let (spare_done, spare_out, _t2) =
        ScenarioRun::start("ebs-2012-10-22-spare-capacity.yaml", &args).finish(RUN_LIMIT);
    assert_eq!(tight_done.code(), Some(0), "{}", tight_done.output());
    assert_eq!(spare_done.code(), Some(0), "{}", spare_done.output());
    let (tight, spare) = (report(&tight_out).volumes, report(&spare_out).volumes);
    assert!(
        spare.stuck_peak < tight.stuck_peak,
        "spare capacity: {spare:?}\n2012 capacity: {tight:?}"
    );
    assert_eq!(spare.failovers_without_capacity, 0, "{spare:?}");
    assert!(tight.failovers_without_capacity > 0, "{tight:?}");
    assert_eq!(
        spare.lost_acknowledged_writes + tight.lost_acknowledged_writes,
        0
    );
}

#[test]
fn fixed_agents_do_not_leak_and_raise_no_alarm() {
    let (done, out, _tmp) =
        ScenarioRun::start("ebs-2012-10-22-fixed.yaml", &["--servers", "6"]).finish(RUN_LIMIT);
    assert_passed(&done, &out);
    let report = report(&out);
    for s in &report.servers {
        let grew = growth(s.agent.rss_first_bytes, s.agent.rss_peak_bytes);
        assert!(
            grew <= 2 * MIB,
            "{} grew {grew} bytes with the fixed agent",
            s.id
        );
        assert!(s.alarms.leak_at_ms.is_none(), "leak alarm on {}", s.id);
        if s.stale {
            assert!(
                s.agent.failed_reports > 0,
                "stale {} should still fail to report",
                s.id
            );
        }
        assert_eq!(s.degraded_at_ms, None, "{} stopped serving I/O", s.id);
    }
    assert_eq!(report.volumes.stuck_peak, 0, "{:?}", report.volumes);
    assert_eq!(report.volumes.lost_acknowledged_writes, 0);
    assert!(
        report.volumes.acknowledged_writes > 100,
        "{:?}",
        report.volumes
    );
}

#[test]
fn an_expectation_that_cannot_hold_exits_1_and_says_which() {
    let (done, out, _tmp) =
        ScenarioRun::start("impossible-expectation.yaml", &[]).finish(RUN_LIMIT);
    assert_eq!(done.code(), Some(1), "{}", done.output());
    assert!(
        done.stdout
            .lines()
            .any(|l| l.starts_with("stale_agents_grow_at_least")
                && l.split_whitespace().nth(1) == Some("NO")),
        "{}",
        done.output()
    );
    assert!(
        done.stdout.contains("expected at least 1GiB"),
        "{}",
        done.output()
    );
    let report = report(&out);
    assert_eq!(report.verdict, Verdict::Fail);
    // CI systems read junit.xml: one case per expectation, the failed one carries its evidence.
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    assert_eq!(
        junit.matches("<testcase ").count(),
        report.expectations.len(),
        "{junit}"
    );
    let failed = report.expectations.iter().filter(|e| !e.passed).count();
    assert_eq!(junit.matches("<failure ").count(), failed, "{junit}");
    assert!(
        junit.contains("stale_agents_grow_at_least") && junit.contains("expected at least 1GiB"),
        "{junit}"
    );
    crate::support::assert_valid_junit(&out.join("junit.xml"));
}

/// The size of `pid`'s spool file: unlinked at once, so found through its open descriptors.
fn spool_bytes(pid: u32) -> u64 {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    (fds.flatten())
        .filter(|fd| {
            std::fs::read_link(fd.path())
                .is_ok_and(|t| t.to_string_lossy().contains("outage-lab-spool-"))
        })
        .filter_map(|fd| std::fs::metadata(fd.path()).ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

#[test]
fn an_agent_with_room_in_its_spool_fails_onto_disk_while_its_memory_stays_flat() {
    // 64 MiB of spool: more than a stale agent's 30 s of failed reports (the largest spool held
    // 22.4 MiB, measured with a debug build), so the leak stays on disk for the whole run.
    let args = ["--servers", "6", "--set", "agent.retry.spool=64MiB"];
    let run = ScenarioRun::start("ebs-2012-10-22.yaml", &args);
    let timeline = |e: &JournalEntry| {
        matches!(
            &e.event,
            Event::Phase {
                name: RunPhase::Timeline,
                ..
            }
        )
    };
    assert!(
        wait_for_journal(&run.out, Duration::from_secs(60), timeline),
        "the fleet came up"
    );
    let agents: Vec<u32> = (journal(&run.out).into_iter())
        .filter_map(|e| match e.event {
            Event::ProcessStarted { role, pid, .. } if role == Role::Agent.as_str() => Some(pid),
            _ => None,
        })
        .collect();
    let mut largest = 0;
    poll_until(
        RUN_LIMIT,
        || {
            largest = (agents.iter())
                .map(|&p| spool_bytes(p))
                .fold(largest, u64::max);
            journal(&run.out).iter().any(|e| {
                matches!(
                    &e.event,
                    Event::Phase {
                        name: RunPhase::Stopping,
                        ..
                    }
                )
            })
        },
        |stopping| *stopping,
    );
    let (done, out, _tmp) = run.finish(RUN_LIMIT);
    let report = report(&out);
    assert!(
        row(&report, "fault_took_effect").passed,
        "{}",
        done.output()
    );
    assert!(
        largest >= 4 * MIB as u64,
        "the largest spool held {largest} bytes"
    );
    for s in report.servers.iter().filter(|s| s.stale) {
        let grew = growth(s.agent.rss_first_bytes, s.agent.rss_peak_bytes);
        assert!(s.agent.failed_reports > 0, "{} failed no report", s.id);
        assert!(
            grew <= 2 * MIB,
            "{} grew by {grew} bytes with room in its spool",
            s.id
        );
    }
    assert!(
        report.servers.iter().all(|s| s.alarms.leak_at_ms.is_none()),
        "no leak alarm while the leak is on disk"
    );
    assert!(!row(&report, "stale_agents_grow_at_least").passed);
}
