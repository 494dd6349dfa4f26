//! `run --set PATH=VALUE` and `--fix NAME`: overrides checked like the file, named when wrong,
//! and recorded in the run directory.

use std::time::Duration;

use crate::support::{run, scenario};

const LIMIT: Duration = Duration::from_secs(20);
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// `outage-lab run <2012 scenario> <args>`, which must be refused with exit 2 before anything
/// starts; returns stderr.
fn refused(args: &[&str]) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let path = scenario("ebs-2012-10-22.yaml");
    let mut all = vec![
        "run",
        path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let done = run(&all, LIMIT);
    assert_eq!(done.code(), Some(2), "{args:?}\n{}", done.output());
    assert!(!out.exists(), "{args:?} made a run directory");
    done.stderr
}

#[test]
fn a_bad_path_a_bad_value_and_an_unknown_fix_are_refused_with_the_setting_named() {
    let e = refused(&["--set", "volumes.placment_fill=0.5"]);
    assert!(
        e.contains("--set volumes.placment_fill=0.5: unknown field `placment_fill`"),
        "{e}"
    );
    let e = refused(&["--set", "volumes.placement_fill=2"]);
    assert!(
        e.contains("--set volumes.placement_fill=2: volumes.placement_fill is not valid: 2; expected a share in (0, 1]"),
        "{e}"
    );
    let e = refused(&["--set", "fleet.servers.count=3"]);
    assert!(
        e.contains("--set fleet.servers.count=3: fleet.servers is 12, not a mapping"),
        "{e}"
    );
    let e = refused(&["--fix", "dns_magic"]);
    assert!(
        e.contains("--fix dns_magic: unknown fix; expected one of leak_alarm_action"),
        "{e}"
    );
    let e = refused(&["--set", "fixes.dns_magic={}"]);
    assert!(
        e.contains("--set fixes.dns_magic={}: unknown field `dns_magic`"),
        "{e}"
    );
    let e = refused(&["--set", "no_equals_sign"]);
    assert!(e.contains("expected PATH=VALUE"), "{e}");
}

#[test]
fn a_good_override_and_a_fix_are_in_the_run_directorys_scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let path = scenario("impossible-expectation.yaml");
    let done = run(
        &[
            "run",
            path.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--set",
            "duration=3s",
            "--set",
            "dns.ttl=2s",
            "--fix",
            "agent_bounded_retry",
        ],
        RUN_LIMIT,
    );
    // The scenario's own expectation cannot hold (that is what it is for): exit 1, not 2.
    assert_eq!(done.code(), Some(1), "{}", done.output());
    assert!(
        done.stdout.contains("fixes on: agent_bounded_retry"),
        "{}",
        done.output()
    );
    let text = std::fs::read_to_string(out.join("scenario.yaml")).unwrap();
    for line in [
        "# --set duration=3s",
        "# --set dns.ttl=2s",
        "# --fix agent_bounded_retry",
    ] {
        assert!(text.contains(line), "{text}");
    }
    let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(doc["duration"], "3s", "{text}");
    assert_eq!(doc["dns"]["ttl"], "2s", "{text}");
    assert!(doc["fixes"]["agent_bounded_retry"].is_object(), "{text}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["fixes"][0]["name"], "agent_bounded_retry",
        "{report}"
    );
}
