//! The page rendered from synthetic runs shaped like the 2012 scenario.

use std::net::IpAddr;

use outage_lab_ebs_events::{AlarmKind, Event, JournalEntry, ProcessRole, RssSample};
use outage_lab_proto::report::{
    AgentReport, ExpectationResult, FixReport, LoadReport, Report, ServerAlarms, ServerReport,
    StorageReport, Verdict, VolumesReport,
};

use super::*;

const MIB: u64 = 1024 * 1024;

fn entry(t_ms: u64, source: &str, event: Event) -> JournalEntry {
    JournalEntry {
        t_ms,
        source: source.into(),
        source_pid: None,
        event,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

/// A run of `servers` servers (every third stale, behind dns-c), 46 s of sweeps every 250 ms,
/// with or without the control plane and customer load.
fn run(servers: usize, with_volumes: bool) -> (Vec<JournalEntry>, Report) {
    let id = |i: usize| format!("s{i:03}");
    let stale = |i: usize| i % 3 == 2;
    let mut e = vec![
        entry(
            0,
            "harness",
            Event::RunStarted {
                scenario: "ebs-2012-10-22".into(),
                seed: 5,
                servers,
            },
        ),
        entry(
            2_000,
            "harness",
            Event::Phase {
                name: outage_lab_proto::RunPhase::Timeline,
                detail: "fleet up".into(),
            },
        ),
    ];
    for i in 0..servers {
        e.push(entry(
            1_000,
            &format!("agent-{}", id(i)),
            Event::AgentResolved {
                server: id(i),
                addrs: vec![ip("127.9.0.200")],
            },
        ));
    }
    for t in (0..46_000).step_by(250) {
        let samples = (0..servers)
            .flat_map(|i| {
                let leak = if stale(i) && t > 8_000 && t < 40_000 {
                    (t - 8_000) * 600
                } else {
                    0
                };
                [
                    RssSample {
                        server: id(i),
                        role: ProcessRole::Agent,
                        pid: 1000 + i as u32,
                        rss_bytes: 8 * MIB + leak,
                    },
                    RssSample {
                        server: id(i),
                        role: ProcessRole::Storage,
                        pid: 5000 + i as u32,
                        rss_bytes: 20 * MIB + (t * 7 + i as u64 * 13) % (3 * MIB),
                    },
                ]
            })
            .collect();
        e.push(entry(t, "watchdog", Event::RssSweep { samples }));
        if with_volumes && t % 1000 == 0 {
            let stuck = if (25_000..40_000).contains(&t) { 9 } else { 0 };
            e.push(entry(
                t,
                "control",
                Event::ControlStats {
                    total: 40,
                    healthy: 40 - stuck,
                    degraded: 0,
                    stuck,
                    failovers_attempted: 0,
                    failovers_without_capacity: 0,
                },
            ));
            e.push(entry(
                t,
                "harness",
                Event::LoadStats {
                    requests: 100,
                    ok: 100 - stuck,
                    errors: stuck,
                    p50_ms: 1.0,
                    p99_ms: 5.0,
                },
            ));
        }
        if t == 5_750 {
            e.push(entry(
                t,
                "harness",
                Event::FaultInjected {
                    action: "replace_collector".into(),
                    detail: "collector-old failed".into(),
                },
            ));
            for dns in ["dns-a", "dns-b"] {
                e.push(entry(
                    t,
                    dns,
                    Event::DnsRecordChanged {
                        name: "collector.lab.internal.".into(),
                        addrs: vec![ip("127.9.0.201")],
                        serial: 2,
                    },
                ));
            }
            e.push(entry(
                t,
                "harness",
                Event::FaultInjected {
                    action: "dns_update".into(),
                    detail: "missed dns-c".into(),
                },
            ));
        }
        if t == 9_000 {
            for i in (0..servers).filter(|i| stale(*i)) {
                e.push(entry(
                    t,
                    "watchdog",
                    Event::Alarm {
                        alarm: AlarmKind::Leak,
                        server: id(i),
                        role: Some(ProcessRole::Agent),
                        pid: Some(1000 + i as u32),
                        detail: "RSS floor climbed <fast> & steadily".into(),
                    },
                ));
            }
        }
    }
    e.push(entry(
        46_000,
        "harness",
        Event::Phase {
            name: outage_lab_proto::RunPhase::Stopping,
            detail: "SIGTERM".into(),
        },
    ));
    let report = Report {
        scenario: "ebs-2012-10-22".into(),
        seed: 5,
        verdict: Verdict::Pass,
        wall_ms: 47_000,
        servers: (0..servers)
            .map(|i| ServerReport {
                id: id(i),
                dns_server: ["dns-a", "dns-b", "dns-c"][i % 3].into(),
                stale: stale(i),
                agent: AgentReport {
                    pid: Some(1000 + i as u32),
                    rss_first_bytes: Some(8 * MIB),
                    rss_peak_bytes: Some(27 * MIB),
                    rss_last_bytes: Some(8 * MIB),
                    failed_reports: 0,
                    ok_reports: 10,
                },
                storage: StorageReport {
                    pid: Some(5000 + i as u32),
                    rss_peak_bytes: Some(23 * MIB),
                    cache_min_bytes: None,
                    degraded_at_ms: None,
                },
                alarms: ServerAlarms {
                    leak_at_ms: stale(i).then_some(9_000),
                    ..ServerAlarms::default()
                },
                degraded_at_ms: None,
                first_stuck_at_ms: None,
                took_failover_load: false,
            })
            .collect(),
        expectations: vec![
            ExpectationResult {
                name: "leak_alarm".into(),
                passed: true,
                detail: "fired on 4/4 stale agents".into(),
            },
            ExpectationResult {
                name: "aggregate_alarm".into(),
                passed: false,
                detail: "fired <early>".into(),
            },
        ],
        volumes: VolumesReport::default(),
        load: LoadReport::default(),
        harness: Default::default(),
        fixes: Vec::new(),
        customers: None,
        lag: None,
    };
    (e, report)
}

#[test]
fn the_memory_plot_draws_one_line_per_process_coloured_by_group() {
    let (entries, report) = run(12, true);
    let html = render(&entries, &report);
    assert_eq!(html.matches(r#"<polyline class="stale""#).count(), 4);
    assert_eq!(html.matches(r#"<polyline class="fresh""#).count(), 8);
    assert_eq!(html.matches(r#"<polyline class="storage""#).count(), 12);
    assert!(
        html.contains("stale agents (4)"),
        "legend counts the groups"
    );
    // The stale-agent colour is the exact one the Chromium test looks for.
    assert!(
        html.contains("svg .stale{stroke:#d62728"),
        "stale colour in the style"
    );
}

#[test]
fn the_page_references_nothing_outside_itself() {
    let (entries, report) = run(12, true);
    let html = render(&entries, &report);
    assert_eq!(outside_references(&html), Vec::<String>::new());
    assert!(!html.contains("<script"), "the report needs no script");
}

#[test]
fn the_reference_audit_finds_what_would_fetch() {
    let html = r##"<img src="a.png"><a href="#x">in page</a><link href="s.css"><p style="background:url(x.png)">http://example.test</p>"##;
    let found = outside_references(html);
    assert_eq!(found.len(), 4, "{found:?}");
}

#[test]
fn text_from_the_journal_is_escaped() {
    let (entries, report) = run(3, true);
    let html = render(&entries, &report);
    assert!(
        html.contains("&lt;fast&gt; &amp; steadily"),
        "alarm detail escaped"
    );
    assert!(!html.contains("<fast>"));
    assert!(
        html.contains("fired &lt;early&gt;"),
        "verdict evidence escaped"
    );
}

#[test]
fn every_plot_shows_the_phases_and_the_numbered_faults() {
    let (entries, report) = run(3, true);
    let html = render(&entries, &report);
    let plots = html.matches("<svg class=\"plot").count();
    assert_eq!(plots, 5, "memory, dns, alarms, volumes, errors");
    // Two faults on each of five plots.
    assert_eq!(html.matches("<line class=\"fault\"").count(), 10);
    assert!(html.contains("phase: timeline"));
    assert!(
        html.contains("#2 dns_update at 5.8s"),
        "2012 table points into the run"
    );
}

#[test]
fn the_dns_plot_shows_the_stale_server_keeping_the_old_answer() {
    let (entries, report) = run(3, true);
    let tracks = series::dns_tracks(&entries, &report);
    let names: Vec<&str> = tracks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["dns-a", "dns-b", "dns-c"]);
    assert_eq!(tracks[0].answers.len(), 2, "dns-a moved to the new address");
    assert_eq!(tracks[0].answers[1].1, vec![ip("127.9.0.201")]);
    assert_eq!(tracks[2].answers, vec![(0, vec![ip("127.9.0.200")])]);
    assert!(tracks[2].stale);
}

#[test]
fn a_journal_without_volumes_or_load_gets_a_note_instead_of_a_plot() {
    let (entries, report) = run(3, false);
    let html = render(&entries, &report);
    assert!(html.contains("No control_stats events in this journal"));
    assert!(html.contains("No load_stats events in this journal"));
    assert!(!html.contains("plot volumes"));
}

#[test]
fn a_report_of_200_servers_stays_well_under_five_mebibytes() {
    let (entries, report) = run(200, true);
    let html = render(&entries, &report);
    assert!(
        html.len() < 5 * 1024 * 1024,
        "report.html is {} bytes",
        html.len()
    );
    let longest = html
        .split("points=\"")
        .skip(1)
        .map(|p| p.split('"').next().unwrap_or("").split(' ').count())
        .max()
        .unwrap_or(0);
    assert!(
        longest <= series::MAX_POINTS,
        "a line kept {longest} points"
    );
}

#[test]
fn journal_lines_of_unknown_kinds_are_skipped_and_bad_lines_named() {
    let good = r#"{"t_ms":1,"source":"harness","kind":"run_finished","verdict":"pass"}"#;
    let newer = r#"{"t_ms":2,"source":"harness","kind":"from_the_future","x":1}"#;
    let text = format!("{good}\n{newer}\n\n");
    let (entries, skipped) = parse_journal(text.as_bytes(), Path::new("j.jsonl")).expect("parses");
    assert_eq!((entries.len(), skipped), (1, 1));

    let bad = format!("{good}\n{{\"t_ms\":3,\"source\":\"x\",\"kind\":\"alarm\"}}\n");
    let err = parse_journal(bad.as_bytes(), Path::new("j.jsonl")).expect_err("refused");
    assert!(
        err.to_string()
            .starts_with("j.jsonl:2: not a journal entry"),
        "{err}"
    );
}

#[test]
fn a_run_directory_round_trips_through_the_files() {
    let (entries, report) = run(3, true);
    let dir = tempfile::tempdir().expect("tempdir");
    let journal: String = entries
        .iter()
        .map(|e| serde_json::to_string(e).expect("json") + "\n")
        .collect();
    std::fs::write(dir.path().join("journal.jsonl"), journal).expect("write");
    std::fs::write(
        dir.path().join("report.json"),
        serde_json::to_string(&report).expect("json"),
    )
    .expect("write");
    let path = write_report(dir.path()).expect("rendered");
    let html = std::fs::read_to_string(path).expect("read");
    assert_eq!(html, render(&entries, &report));

    std::fs::remove_file(dir.path().join("report.json")).expect("rm");
    let err = write_report(dir.path()).expect_err("no report");
    assert!(err.to_string().contains("report.json"), "{err}");
}

#[test]
fn a_fix_that_never_acted_gets_its_row_and_no_empty_action_list() {
    let (mut entries, mut report) = run(3, true);
    report.fixes = vec![FixReport {
        name: "spare_capacity".into(),
        actions: 0,
        detail: "placement fill 0.5".into(),
    }];
    let html = render(&entries, &report);
    assert!(html.contains("placement fill 0.5"), "the fix's row");
    assert!(
        !html.contains("class=\"fix-actions\""),
        "no empty action list"
    );
    let restart = |t_ms| {
        entry(
            t_ms,
            "harness",
            Event::FixApplied {
                fix: "leak_alarm_action".into(),
                server: None,
                process: Some("agent-s001".into()),
                detail: "restarted".into(),
            },
        )
    };
    entries.extend((0..45).map(|i| restart(20_000 + i)));
    let html = render(&entries, &report);
    assert_eq!(html.matches("<td>restarted</td>").count(), 40);
    assert!(
        html.contains("The first 40 of 45 actions."),
        "the cut is said"
    );
}
