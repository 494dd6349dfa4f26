use std::net::Ipv4Addr;

use outage_lab_dynamodb_events::{ClientKind, Refusal};

use super::*;

const FIXTURE: &str = include_str!("../../../../fixtures/scenarios/dynamodb-2025-10-20.yaml");
const EP: &str = "dynamodb.us-east-1.lab.internal.";

fn scenario() -> Scenario {
    Scenario::parse(FIXTURE, "fixture").expect("the fixture parses")
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
