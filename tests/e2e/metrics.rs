//! `/metrics` during a real run: every endpoint `endpoints.json` lists passes
//! `promtool check metrics` and carries the metrics its role is known for.
//!
//! Needs `promtool` on PATH (or in `$PROMTOOL`): `export PATH="$(scripts/install-promtool):$PATH"`.
//! CI installs it; a missing promtool fails this test, it never skips.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde::Deserialize;

use crate::support::{ScenarioRun, poll_until};

/// One entry of `endpoints.json`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Endpoint {
    name: String,
    role: String,
    url: String,
    kind: String,
}

/// Metric names every endpoint of a role must show.
fn required(role: &str) -> &'static [&'static str] {
    match role {
        "watchdog" => &[
            "outage_lab_resident_memory_bytes{role=\"agent\"",
            "outage_lab_resident_memory_bytes{role=\"storage\"",
            "stale=\"true\"}",
            "outage_lab_server_memory_budget_bytes{",
            "outage_lab_watchdog_alarms_total{kind=\"leak\"}",
        ],
        "agent" => &[
            "outage_lab_agent_reports_ok_total{",
            "outage_lab_agent_reports_failed_total{",
            "outage_lab_agent_reports_pending{",
            "outage_lab_agent_retained_bytes{",
        ],
        "storage" => &[
            "outage_lab_storage_cache_bytes{",
            "outage_lab_storage_cache_target_bytes{",
            "outage_lab_storage_request_latency_seconds_bucket{",
            "outage_lab_storage_hits_total{",
            "outage_lab_storage_misses_total{",
            "outage_lab_storage_deadline_misses_total{",
        ],
        "dns" => &[
            "outage_lab_dns_queries_total ",
            "outage_lab_dns_counted_answer{address=",
        ],
        "collector" => &["outage_lab_collector_reports_total "],
        "control" => &[
            "outage_lab_control_volumes{state=\"stuck\"}",
            "outage_lab_control_failovers_total ",
            "outage_lab_control_failovers_without_capacity_total ",
            "outage_lab_control_server_healthy{server=",
        ],
        _ => &[],
    }
}

fn wait_for_file(path: &Path, limit: Duration) -> String {
    let read = || std::fs::read_to_string(path).ok();
    poll_until(limit, read, Option::is_some)
        .unwrap_or_else(|| panic!("{} did not appear within {limit:?}", path.display()))
}

fn get(client: &reqwest::blocking::Client, url: &str) -> String {
    let resp = client
        .get(url)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        content_type, "text/plain; version=0.0.4; charset=utf-8",
        "{url}"
    );
    resp.text().expect("body")
}

/// Runs `promtool check metrics` on `body`; returns whether it passed and what it printed.
fn promtool_check(body: &str) -> (bool, String) {
    let promtool = std::env::var_os("PROMTOOL").unwrap_or_else(|| "promtool".into());
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}. This test needs promtool: export PATH=\"$(scripts/install-promtool):$PATH\" (or set PROMTOOL)",
                promtool.to_string_lossy()
            )
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool output");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

#[test]
fn every_metrics_endpoint_of_a_run_passes_promtool_and_shows_its_key_metrics() {
    let run = ScenarioRun::start("ebs-2012-10-22.yaml", &["--servers", "3", "--seed", "4"]);
    let text = wait_for_file(&run.out.join("endpoints.json"), Duration::from_secs(90));
    let endpoints: Vec<Endpoint> = serde_json::from_str(&text).expect("endpoints.json parses");
    let metrics: Vec<&Endpoint> = endpoints.iter().filter(|e| e.kind == "metrics").collect();

    let mut per_role: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &metrics {
        *per_role.entry(e.role.as_str()).or_default() += 1;
    }
    let expected = BTreeMap::from([
        ("agent", 3),
        ("collector", 1),
        ("control", 1),
        ("dns", 3),
        ("storage", 3),
        ("watchdog", 1),
    ]);
    assert_eq!(per_role, expected, "metrics endpoints by role:\n{text}");
    assert!(
        endpoints
            .iter()
            .any(|e| e.role == "watchdog" && e.kind == "admin"),
        "the watchdog's admin API is listed:\n{text}"
    );

    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");

    // The watchdog exports resident memory once the harness told it the targets and it swept.
    let watchdog = metrics
        .iter()
        .find(|e| e.role == "watchdog")
        .expect("watchdog listed");
    let sampled = |body: &String| body.contains("stale=\"true\"}");
    let body = poll_until(
        Duration::from_secs(20),
        || get(&client, &watchdog.url),
        sampled,
    );
    assert!(
        sampled(&body),
        "no stale=\"true\" resident memory sample within 20s:\n{body}"
    );

    for e in &metrics {
        let body = get(&client, &e.url);
        let (ok, printed) = promtool_check(&body);
        assert!(
            ok,
            "promtool check metrics failed for {} ({}):\n{printed}\n--- body ---\n{body}",
            e.name, e.url
        );
        for name in required(&e.role) {
            assert!(
                body.contains(name),
                "{} ({}) lacks {name}:\n{body}",
                e.name,
                e.url
            );
        }
        eprintln!(
            "promtool check metrics {} ({}): passed{}",
            e.name,
            e.url,
            if printed.trim().is_empty() {
                String::new()
            } else {
                format!(": {printed}")
            }
        );
    }

    // Stop the run early: what was to be checked has been checked.
    run.proc.signal(libc::SIGINT);
    let (done, _, _tmp) = run.finish(Duration::from_secs(30));
    assert_eq!(done.code(), Some(130), "{}", done.output());
}
