//! Bad input is refused before anything starts.

use std::time::Duration;

use crate::support::{repo, run, scenario};

#[test]
fn every_shipped_scenario_validates() {
    let root = repo().join("fixtures/scenarios");
    let mut args = vec!["validate".to_owned()];
    for dir in [root.clone(), root.join("agents")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                args.push(path.display().to_string());
            }
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let done = run(&args, Duration::from_secs(20));
    assert_eq!(done.code(), Some(0), "{}", done.output());
    for shipped in [
        "ebs-2012-10-22.yaml: ok",
        "hoarder.yaml: ok",
        "bounded.yaml: ok",
    ] {
        assert!(done.stdout.contains(shipped), "{}", done.output());
    }
}

#[test]
fn a_bad_scenario_exits_2_with_its_location_and_starts_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yaml");
    let text = std::fs::read_to_string(scenario("ebs-2012-10-22.yaml"))
        .unwrap()
        .replace("  ttl: 1s\n", "  ttl: 1s\n  colour: blue\n");
    std::fs::write(&bad, text).unwrap();
    let out = tmp.path().join("run");
    let done = run(
        &["run", bad.to_str().unwrap(), "--out", out.to_str().unwrap()],
        Duration::from_secs(20),
    );
    assert_eq!(done.code(), Some(2), "{}", done.output());
    assert!(
        done.stderr.contains("bad.yaml:") && done.stderr.contains("unknown field `colour`"),
        "{}",
        done.output()
    );
    assert!(
        !out.exists(),
        "a run directory was created for a bad scenario"
    );
}

#[test]
fn a_missing_scenario_file_and_a_directory_are_bad_input() {
    for path in ["/nonexistent/scenario.yaml", "/"] {
        let done = run(&["validate", path], Duration::from_secs(20));
        assert_eq!(done.code(), Some(2), "{path}: {}", done.output());
        assert!(done.stderr.contains(path), "{}", done.output());
    }
}
