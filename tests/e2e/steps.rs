//! Timeline steps beyond the 2012 chain, each proven on real processes.

use std::time::Duration;

use outage_lab_ebs_events::{Event, FailoverOutcome, Role};

use crate::support::{ScenarioRun, assert_passed, journal, report, row, wait_until_gone};

const RUN_LIMIT: Duration = Duration::from_secs(120);

#[test]
fn killing_a_fresh_storage_process_mid_run_makes_its_volumes_fail_over() {
    let (done, out, _tmp) = ScenarioRun::start("storage-server-dies.yaml", &[]).finish(RUN_LIMIT);
    assert_passed(&done, &out);
    let entries = journal(&out);

    // The step ran once, as a kill of one storage process, and journaled which one.
    let kills: Vec<(u64, &str)> = (entries.iter())
        .filter_map(|e| match &e.event {
            Event::FaultInjected { action, detail } if action == "kill" => {
                Some((e.t_ms, detail.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(kills.len(), 1, "{}", done.output());
    let (killed_at, detail) = kills[0];
    assert!(
        detail.starts_with("SIGKILL: storage-s000 (pid "),
        "{detail}"
    );

    // The server was fresh, and its storage process really died, as the harness asked: the
    // step is journaled once the process is reaped, so its exit comes just before.
    let report = report(&out);
    let victim = report.servers.iter().find(|s| s.id == "s000").unwrap();
    assert!(!victim.stale, "{victim:#?}");
    let exits: Vec<(u64, bool)> = (entries.iter())
        .filter_map(|e| match &e.event {
            Event::ProcessExited { name, expected, .. } if name == "storage-s000" => {
                Some((e.t_ms, *expected))
            }
            _ => None,
        })
        .collect();
    let &(exit_ms, expected) = exits.first().expect("storage-s000 exited");
    assert!(expected, "the kill was the harness's own: {exits:?}");
    assert!(
        exit_ms <= killed_at && killed_at - exit_ms < 1_000,
        "storage-s000 exited at {exit_ms}ms, the kill was journaled at {killed_at}ms"
    );
    let restarted = entries.iter().any(|e| {
        matches!(&e.event, Event::ProcessStarted { role, server: Some(s), .. } if role == Role::Storage.as_str() && s == "s000")
            && e.t_ms > killed_at
    });
    assert!(!restarted, "a killed process must stay dead");

    // Control noticed, and every volume that had a replica there got a new mirror elsewhere.
    let moved: Vec<&str> = (entries.iter())
        .filter_map(|e| match &e.event {
            Event::Failover {
                from,
                to: Some(to),
                outcome: FailoverOutcome::Remirrored,
                volume,
                ..
            } if from == "s000" && e.t_ms > killed_at => {
                assert_ne!(to, "s000");
                Some(volume.as_str())
            }
            _ => None,
        })
        .collect();
    assert!(!moved.is_empty(), "no volume failed over from s000");
    assert_eq!(report.volumes.stuck_peak, 0, "{:#?}", report.volumes);
    assert_eq!(
        report.volumes.lost_acknowledged_writes, 0,
        "{:#?}",
        report.volumes
    );

    let kill_row = crate::support::row(&report, "kill_took_effect");
    assert!(kill_row.passed, "{kill_row:?}");
    assert!(
        kill_row.detail.contains("s000 not serving I/O"),
        "{kill_row:?}"
    );
    let left = wait_until_gone(out.to_str().unwrap(), Duration::from_secs(3));
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_servfail_on_one_dns_server_stops_only_the_agents_behind_it_until_it_ends() {
    let (done, out, _tmp) = ScenarioRun::start("dns-servfail.yaml", &[]).finish(RUN_LIMIT);
    assert_passed(&done, &out);
    let report = report(&out);
    let took = row(&report, "dns_fault_took_effect");
    assert!(took.detail.starts_with("SERVFAIL: dns-a at "), "{took:?}");
    let behind = |dns: &str| -> std::collections::BTreeSet<String> {
        (report.servers.iter())
            .filter(|s| s.dns_server == dns)
            .map(|s| s.id.clone())
            .collect()
    };

    // Only the agents behind dns-a got a failure, and the failure was the server's.
    let entries = journal(&out);
    let failed: std::collections::BTreeSet<String> = (entries.iter())
        .filter_map(|e| match &e.event {
            Event::AgentResolveFailed { server, error } => {
                assert!(error.contains("Server Failure"), "{error}");
                Some(server.clone())
            }
            _ => None,
        })
        .collect();
    assert_eq!(failed, behind("dns-a"));
    assert!(!behind("dns-b").is_empty());

    // Once the fault was off, each of them reported again.
    let ended = (entries.iter())
        .find(|e| matches!(&e.event, Event::FaultInjected { action, detail } if action == "dns_fault" && detail.contains("the fault off")))
        .map(|e| e.t_ms)
        .expect("the fault was turned off");
    for server in behind("dns-a") {
        let ok_at = |until: u64| {
            (entries.iter().rev().filter(|e| e.t_ms <= until))
                .find_map(|e| match &e.event {
                    Event::AgentStats {
                        server: s,
                        ok_reports,
                        ..
                    } if *s == server => Some(*ok_reports),
                    _ => None,
                })
                .unwrap_or(0)
        };
        assert!(
            ok_at(u64::MAX) > ok_at(ended),
            "{server} never reported after the fault ended"
        );
    }
}
