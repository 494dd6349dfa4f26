use std::net::Ipv4Addr;

use outage_lab_dynamodb_events::{ClientKind, Refusal};

use super::*;

const FIXTURE: &str = include_str!("../../../../fixtures/scenarios/dynamodb-2025-10-20.yaml");
const EP: &str = "dynamodb.us-east-1.lab.internal.";

/// The shipped scenario, both halves.
fn both_halves() -> Scenario {
    Scenario::parse(FIXTURE, "fixture").expect("the fixture parses")
}

/// The shipped scenario without its lease manager: the DNS race alone.
fn scenario() -> Scenario {
    let mut first = both_halves();
    first.leases = None;
    first
        .timeline
        .retain(|e| e.step().is_some_and(|s| !s.sheds_load()));
    first
}

fn at(t_ms: u64, event: impl Into<Event>) -> JournalEntry {
    JournalEntry {
        t_ms,
        source: "test".into(),
        source_pid: None,
        event: event.into(),
    }
}

fn probe(t_ms: u64, server: &str, addrs: &[Ipv4Addr]) -> JournalEntry {
    at(
        t_ms,
        Event::EndpointProbed {
            server: server.into(),
            endpoint: EP.into(),
            addrs: addrs.to_vec(),
            error: None,
        },
    )
}

fn stats(t_ms: u64, ok: u64, failed: u64) -> JournalEntry {
    at(
        t_ms,
        Event::ClientStats {
            client: "customer-1".into(),
            client_kind: ClientKind::Customer,
            ok,
            failed,
            lookups: failed,
            lookups_failed: failed,
            served_stale: 0,
        },
    )
}

fn phase(t_ms: u64, name: RunPhase) -> JournalEntry {
    at(
        t_ms,
        EngineEvent::Phase {
            name,
            detail: String::new(),
        },
    )
}

/// A journal of the outage as it should go: the stale write at 5 s, the deletion, every
/// server empty, refusals, failures, the repair at 10 s, recovery by 11 s.
fn outage() -> Vec<JournalEntry> {
    let lb = Ipv4Addr::new(127, 25, 1, 1);
    let mut j = vec![phase(0, RunPhase::Timeline)];
    j.extend(["dns-a", "dns-b", "dns-c"].map(|s| probe(100, s, &[lb])));
    j.push(stats(4_000, 20, 0));
    j.push(at(
        5_000,
        Event::EndpointApplied {
            enactor: "enactor-a".into(),
            endpoint: EP.into(),
            generation: Generation(40),
            replaced: Some(Generation(53)),
            addrs: vec![lb],
        },
    ));
    j.push(at(
        5_300,
        Event::PlanDeleted {
            enactor: "enactor-b".into(),
            generation: Generation(40),
            applied: Generation(53),
            emptied: vec![EP.into()],
        },
    ));
    j.extend(["dns-a", "dns-b", "dns-c"].map(|s| probe(5_400, s, &[])));
    j.push(at(
        5_600,
        Event::ApplyRefused {
            enactor: "enactor-c".into(),
            endpoint: EP.into(),
            generation: Generation(55),
            refusal: Refusal::PlanGone {
                current: Generation(40),
            },
        },
    ));
    j.push(stats(6_000, 12, 8));
    j.push(stats(9_000, 0, 20));
    j.push(at(
        10_000,
        EngineEvent::FaultInjected {
            action: "manual_repair".into(),
            detail: String::new(),
        },
    ));
    j.push(stats(10_500, 5, 15));
    j.extend([stats(11_500, 20, 0), stats(12_500, 20, 0)]);
    j.push(phase(15_000, RunPhase::Stopping));
    j
}

fn row<'a>(rows: &'a [ExpectationResult], name: &str) -> &'a ExpectationResult {
    rows.iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no row {name}: {rows:?}"))
}

#[test]
fn an_outage_as_it_happened_holds_every_row_with_its_evidence() {
    let rows = judge(&scenario(), &outage());
    assert!(rows.iter().all(|r| r.passed), "{rows:#?}");
    let fault = &row(&rows, "fault_took_effect").detail;
    assert!(
        fault.contains("enactor-a wrote the old plan g40 over the newer g53 at 5000ms"),
        "{fault}"
    );
    assert!(fault.contains("from 5400ms"), "{fault}");
    let recovered = &row(&rows, "clients_recover_within").detail;
    assert!(recovered.contains("500ms after the repair"), "{recovered}");
}

#[test]
fn an_enactor_writing_the_endpoint_before_the_repair_means_the_automation_was_not_stuck() {
    let mut journal = outage();
    journal.insert(
        8,
        at(
            7_000,
            Event::EndpointApplied {
                enactor: "enactor-b".into(),
                endpoint: EP.into(),
                generation: Generation(70),
                replaced: Some(Generation(40)),
                addrs: vec![Ipv4Addr::new(127, 25, 1, 2)],
            },
        ),
    );
    let rows = judge(&scenario(), &journal);
    let stuck = row(&rows, "automation_stuck");
    assert!(
        !stuck.passed && stuck.detail.contains("enactor-b at 7000ms"),
        "{stuck:?}"
    );
}

#[test]
fn a_run_where_the_race_never_fired_fails_and_says_so() {
    let journal: Vec<JournalEntry> = (outage().into_iter())
        .filter(|e| !matches!(e.event, Event::PlanDeleted { .. }))
        .collect();
    let rows = judge(&scenario(), &journal);
    let fault = row(&rows, "fault_took_effect");
    assert!(
        !fault.passed && fault.detail.contains("the race did not fire"),
        "{fault:?}"
    );
}

#[test]
fn with_a_fix_that_protects_the_endpoint_an_empty_answer_fails_the_run() {
    let mut protected = scenario();
    protected.fixes.turn_on("cleanup_keeps_active_plan");
    let rows = judge(&protected, &outage());
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "processes_stayed_up",
            "endpoint_never_emptied",
            "clients_kept_working"
        ]
    );
    assert!(!row(&rows, "endpoint_never_emptied").passed);
    assert_eq!(planned(&protected), rows.len());
}

#[test]
fn servers_found_empty_before_the_clean_up_told_of_its_deletion_still_count() {
    let journal: Vec<JournalEntry> = (outage().into_iter())
        .map(|mut e| {
            if matches!(&e.event, Event::EndpointProbed { addrs, .. } if addrs.is_empty()) {
                e.t_ms = 5_250;
            }
            e
        })
        .collect();
    let rows = judge(&scenario(), &journal);
    let fault = row(&rows, "fault_took_effect");
    assert!(
        fault.passed && fault.detail.contains("from 5250ms"),
        "{fault:?}"
    );
}

/// The lease manager's second at `t_ms`: work done, of it in time, its queue, leases valid.
fn lease(t_ms: u64, processed: u64, completed: u64, queued: u64, valid: u64) -> JournalEntry {
    at(
        t_ms,
        Event::LeaseStats {
            queued,
            received: processed,
            processed,
            completed,
            timed_out: processed - completed,
            failed_checks: 0,
            dropped: 0,
            throttled: 0,
            leases_valid: valid,
            servers: 300,
        },
    )
}

fn step(t_ms: u64, action: &str) -> JournalEntry {
    at(
        t_ms,
        EngineEvent::FaultInjected {
            action: action.into(),
            detail: String::new(),
        },
    )
}

/// [`outage`] with the lease manager: leases expire while the endpoint is empty (5.4 s to the
/// repair at 10 s), the workers then do nothing in time from 11 s to 18 s, the operators
/// throttle at 18 s and restart it at 19 s, and the leases are back at 21 s.
fn outage_with_leases() -> Vec<JournalEntry> {
    let mut j: Vec<JournalEntry> = (outage().into_iter())
        .filter(|e| {
            !matches!(
                e.event.engine(),
                Some(EngineEvent::Phase {
                    name: RunPhase::Stopping,
                    ..
                })
            )
        })
        .collect();
    j.extend((1..=5).map(|s| lease(s * 1000, 100, 100, 0, 300)));
    j.extend(
        [(6, 150), (7, 40), (8, 0), (9, 0), (10, 0)]
            .map(|(s, v)| lease(s * 1000 + 1, 10, 0, 500 * s, v)),
    );
    j.extend((11..=18).map(|s| lease(s * 1000 + 1, 180, 2, 6000 + 500 * s, 0)));
    j.push(step(18_100, "throttle_renewals"));
    j.push(step(19_100, "restart_lease_manager"));
    j.extend(
        [(19, 0, 30), (20, 150, 200), (21, 100, 299), (22, 100, 300)]
            .map(|(s, done, v)| lease(s * 1000 + 200, done, done, 0, v)),
    );
    // Two customers launch 4 a second: refused while no lease is valid (9 s to 20 s).
    j.extend((2..=24).flat_map(|s| {
        let refused = (9..=20).contains(&s);
        (0..2).map(move |c| launch(s * 1000 + 300, c, refused))
    }));
    j.push(phase(25_000, RunPhase::Stopping));
    j.sort_by_key(|e| e.t_ms);
    j
}

/// Customer `c`'s second of 4 launches at `t_ms`, all refused for insufficient capacity or all
/// placed.
fn launch(t_ms: u64, c: usize, refused: bool) -> JournalEntry {
    let (launched, insufficient_capacity) = if refused { (0, 4) } else { (4, 0) };
    at(
        t_ms,
        Event::LaunchStats {
            customer: format!("customer-{}", c + 1),
            launched,
            insufficient_capacity,
            failed: 0,
        },
    )
}

#[test]
fn a_collapse_that_outlives_the_repair_until_the_operators_shed_load_holds_every_lease_row() {
    let rows = judge(&both_halves(), &outage_with_leases());
    assert!(rows.iter().all(|r| r.passed), "{rows:#?}");
    assert_eq!(planned(&both_halves()), rows.len());
    let expired = &row(&rows, "leases_expired").detail;
    assert!(
        expired.contains("fell from 300 to 0 of 300 by 8001ms"),
        "{expired}"
    );
    // From the repair (10 s) plus the negative TTL (1 s) and the connections' age (1 s).
    let collapse = &row(&rows, "congestive_collapse").detail;
    assert!(
        collapse
            .contains("for 6000ms from 12001ms (limit 5000ms): 12 of 1080 renewals done in time"),
        "{collapse}"
    );
    let back = &row(&rows, "recovers_after_load_shed").detail;
    assert!(
        back.contains("at 19100ms, 299 of 300 leases were valid at 21200ms"),
        "{back}"
    );
    let launches = &row(&rows, "launches_refused").detail;
    assert!(
        launches.contains("96 launches refused with insufficient capacity from 9300ms to 20300ms (customer-1 48, customer-2 48); in the last 3000ms, 24 placed and 0 refused"),
        "{launches}"
    );
}

#[test]
fn launches_refused_to_the_end_do_not_hold() {
    let journal: Vec<JournalEntry> = (outage_with_leases().into_iter())
        .map(|e| match e.event {
            Event::LaunchStats { .. } if e.t_ms == 24_300 => launch(24_300, 0, true),
            _ => e,
        })
        .collect();
    let rows = judge(&both_halves(), &journal);
    let launches = row(&rows, "launches_refused");
    assert!(
        !launches.passed && launches.detail.ends_with("16 placed and 8 refused"),
        "{launches:?}"
    );
}

#[test]
fn renewals_done_in_time_in_the_middle_of_the_window_cut_the_collapse_short() {
    let journal: Vec<JournalEntry> = (outage_with_leases().into_iter())
        .map(|e| match e.event {
            Event::LeaseStats { .. } if e.t_ms == 15_001 => lease(15_001, 180, 170, 100, 150),
            _ => e,
        })
        .collect();
    let rows = judge(&both_halves(), &journal);
    let collapse = row(&rows, "congestive_collapse");
    assert!(
        !collapse.passed && collapse.detail.contains("for 3000ms"),
        "{collapse:?}"
    );
}

#[test]
fn with_admission_control_the_leases_must_come_back_before_anyone_sheds_load() {
    let mut fixed = both_halves();
    fixed.fixes.turn_on("admission_control");
    let rows = judge(&fixed, &outage_with_leases());
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names[names.len() - 3..],
        ["leases_expired", "recovers_by_itself", "launches_refused"]
    );
    let itself = row(&rows, "recovers_by_itself");
    assert!(
        !itself.passed
            && itself
                .detail
                .contains("the operators shed load first, at 19100ms"),
        "{itself:?}"
    );
    assert_eq!(planned(&fixed), rows.len());
}

#[test]
fn with_the_recovery_runbook_the_leases_come_back_by_themselves_within_the_bound() {
    let mut fixed = both_halves();
    fixed.fixes.turn_on("recovery_runbook");
    let journal: Vec<JournalEntry> = (outage_with_leases().into_iter())
        .filter(|e| !matches!(e.event, Event::LeaseStats { .. }) || e.t_ms < 11_000)
        .chain([
            lease(11_001, 120, 100, 0, 150),
            lease(12_001, 120, 120, 0, 290),
        ])
        .collect();
    let rows = judge(&fixed, &journal);
    let itself = row(&rows, "recovers_by_itself");
    assert!(
        itself.passed
            && itself
                .detail
                .contains("290 of 300 leases were valid at 12001ms: 2001ms later"),
        "{itself:?}"
    );
}

#[test]
fn with_the_endpoint_protected_the_leases_must_stay_valid() {
    let mut protected = both_halves();
    protected.fixes.turn_on("enactor_checks_at_write");
    let rows = judge(&protected, &outage_with_leases());
    let kept = row(&rows, "leases_kept");
    assert!(
        !kept.passed && kept.detail.contains("the fewest valid were 0 of 300"),
        "{kept:?}"
    );
    assert_eq!(planned(&protected), rows.len());
}
