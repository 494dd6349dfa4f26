//! `compare` and `grid`: many real runs, summarised; their pages drawn in a real browser, their
//! CSVs read by a standard CSV reader, and an interrupted experiment leaving nothing behind.

use std::path::Path;
use std::time::Duration;

use crate::support::browser::{browser, finish};
use crate::support::{Proc, poll_until, run, wait_until_gone};

const LIMIT: Duration = Duration::from_secs(240);

/// A short scenario in `dir`: 3 servers for 8 seconds, the collector swap and the partial DNS
/// update, and one expectation that cannot hold (exit 1 is a result, not a failure to run).
/// A debug build's processes are larger: the budget grows with them (see
/// `support::calibration`).
fn short(dir: &Path) -> std::path::PathBuf {
    let budget = crate::support::calibration::budget();
    let text = format!(
        "name: short\nseed: 5\nduration: 8s\nfleet: {{ servers: 3, memory_budget: {budget} }}\n\
         dns: {{ servers: [dns-a, dns-b, dns-c] }}\ntimeline:\n\
         \x20 - replace_collector: {{ at: 1s }}\n\
         \x20 - dns_update: {{ at: 1s, propagate_to: [dns-a, dns-b] }}\n\
         expect:\n  stale_agents_grow_at_least: 1GiB\n"
    );
    let path = dir.join("short.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn csv_rows(path: &Path) -> Vec<csv::StringRecord> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    assert_eq!(&headers[0], "group");
    assert_eq!(headers.iter().next_back(), Some("rerun"));
    reader.records().map(|r| r.unwrap()).collect()
}

fn dom(page: &Path, profile: &Path) -> String {
    let url = format!("file://{}", page.display());
    finish(
        browser(profile, &["--dump-dom"], &url),
        Duration::from_secs(60),
    )
}

#[test]
fn compare_runs_each_variant_over_the_seeds_and_draws_the_table() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cmp");
    let path = short(tmp.path());
    let done = run(
        &[
            "compare",
            path.to_str().unwrap(),
            "--fix",
            "agent_bounded_retry",
            "--seeds",
            "2",
            "--out",
            out.to_str().unwrap(),
            "--expect",
            "agent_bounded_retry prevents stuck_volumes",
        ],
        LIMIT,
    );
    assert_eq!(done.code(), Some(0), "{}", done.output());
    assert!(
        done.stdout
            .contains("agent_bounded_retry alone prevents stuck volumes on 2 of 2 seeds"),
        "{}",
        done.output()
    );
    // Each finished cell's line says how to run it alone.
    assert_eq!(
        done.stderr.matches("; alone: outage-lab run ").count(),
        4,
        "{}",
        done.output()
    );
    let rows = csv_rows(&out.join("compare.csv"));
    assert_eq!(rows.len(), 4, "2 variants x 2 seeds");
    for row in &rows {
        assert_eq!(&row[2], "ran", "{row:?}");
        let rerun = row.iter().next_back().unwrap();
        assert!(
            rerun.starts_with("outage-lab run ") && rerun.contains("--seed"),
            "{rerun}"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("compare.json")).unwrap()).unwrap();
    assert_eq!(json["variants"].as_array().unwrap().len(), 2, "{json}");
    let page = dom(&out.join("compare.html"), &tmp.path().join("profile"));
    // A bar per variant for each of the 4 metrics every run has (the alarms may never fire).
    assert!(page.matches("class=\"bar\"").count() >= 8, "{page}");
    assert!(page.contains("with no fix"), "{page}");
    // What applies to no run is left out: no customer accounts, no cache-aware alarm here.
    for absent in ["bystander api success", "cache aware", "not applicable"] {
        assert!(!page.contains(absent), "{absent}: {page}");
    }
    assert!(page.contains("2 seeds per point"), "{page}");
    assert!(wait_until_gone(out.to_str().unwrap(), Duration::from_secs(3)).is_empty());
}

#[test]
fn grid_maps_the_metric_over_two_axes_as_a_heat_map() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("grid");
    let path = short(tmp.path());
    let done = run(
        &[
            "grid",
            path.to_str().unwrap(),
            "--vary",
            "volumes.placement_fill=0.5,0.875",
            "--vary",
            "dns.ttl=1s,2s",
            "--seeds",
            "1",
            "--metric",
            "error_rate",
            "--out",
            out.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(done.code(), Some(0), "{}", done.output());
    let rows = csv_rows(&out.join("grid.csv"));
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().any(|r| {
        r.iter()
            .next_back()
            .unwrap()
            .contains("--set volumes.placement_fill=0.5 --set dns.ttl=2s")
    }));
    let page = dom(&out.join("grid.html"), &tmp.path().join("profile"));
    assert_eq!(page.matches("class=\"cell\"").count(), 4, "{page}");
    assert!(page.contains("volumes.placement_fill"), "{page}");
}

#[test]
fn bad_experiment_input_is_refused_before_anything_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x");
    let path = short(tmp.path());
    let p = path.to_str().unwrap();
    let o = out.to_str().unwrap();
    for (args, says) in [
        (
            vec!["compare", p, "--fix", "magic", "--out", o],
            "--fix magic: unknown fix",
        ),
        (
            vec!["compare", p, "--expect", "magic", "--out", o],
            "expected 'VARIANT prevents stuck_volumes'",
        ),
        (
            vec![
                "grid",
                p,
                "--vary",
                "volumes.placement_fill=2,3",
                "--out",
                o,
            ],
            "--set volumes.placement_fill=2",
        ),
        (
            vec!["grid", p, "--vary", "a=1..2", "--out", o],
            "a range needs a count",
        ),
        (
            vec![
                "grid",
                p,
                "--vary",
                "dns.ttl=1s",
                "--metric",
                "luck",
                "--out",
                o,
            ],
            "--metric luck: unknown metric",
        ),
    ] {
        let done = run(&args, Duration::from_secs(20));
        assert_eq!(done.code(), Some(2), "{args:?}\n{}", done.output());
        assert!(done.stderr.contains(says), "{args:?}\n{}", done.output());
        assert!(!out.exists(), "{args:?} started something");
    }
}

#[test]
fn an_interrupted_compare_stops_every_cell_and_keeps_the_finished_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("cmp");
    let path = short(tmp.path());
    let proc = Proc::start(&[
        "compare",
        path.to_str().unwrap(),
        "--fix",
        "agent_bounded_retry",
        "--seeds",
        "3",
        "--jobs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    // Wait until the first cell has finished (its report is written), then Ctrl-C.
    let first = out.join("cells").join("baseline-seed5").join("report.json");
    let finished = poll_until(Duration::from_secs(120), || first.exists(), |done| *done);
    assert!(finished, "the first cell never finished");
    std::thread::sleep(Duration::from_secs(2));
    proc.signal(libc::SIGINT);
    let done = proc.wait(Duration::from_secs(60));
    assert_eq!(done.code(), Some(130), "{}", done.output());
    let left = wait_until_gone(out.to_str().unwrap(), Duration::from_secs(5));
    assert!(left.is_empty(), "left behind: {left:?}");
    let rows = csv_rows(&out.join("compare.csv"));
    let ran = rows.iter().filter(|r| &r[2] == "ran").count();
    let interrupted = rows.iter().filter(|r| &r[2] == "interrupted").count();
    assert!(ran >= 1, "{rows:?}");
    assert!(interrupted >= 1, "{rows:?}");
    assert_eq!(ran + interrupted, rows.len(), "{rows:?}");
}
