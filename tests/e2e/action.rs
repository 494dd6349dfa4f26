//! The GitHub Action's shell logic (scripts/action-run, which action.yml calls) run here as a
//! job would run it: the action's inputs in INPUT_* variables, GitHub's files in temp files.

use std::ffi::OsStr;
use std::time::Duration;

use crate::support::{Proc, bin, calibrated, repo, scenario};

#[test]
fn the_action_script_writes_the_verdict_table_to_the_summary_and_the_outputs() {
    if !crate::support::root_or_skip("scripts/action-run (it runs the scenario as root, or sudo)") {
        return;
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    let summary = tmp.path().join("step-summary.md");
    let outputs = tmp.path().join("github-output");
    // The shortest shipped scenario that passes without root of its own: 6 servers for 16 s.
    let path = calibrated(&scenario("storage-server-dies.yaml"), tmp.path());
    let exe = bin();
    let env: [(&str, &OsStr); 6] = [
        ("INPUT_SCENARIO", path.as_os_str()),
        ("INPUT_SEED", OsStr::new("7")),
        ("GITHUB_STEP_SUMMARY", summary.as_os_str()),
        ("GITHUB_OUTPUT", outputs.as_os_str()),
        ("RUNNER_TEMP", tmp.path().as_os_str()),
        ("OUTAGE_LAB_BIN", exe.as_os_str()),
    ];
    let done = Proc::start_program(&repo().join("scripts/action-run"), &[], &env)
        .wait(Duration::from_secs(120));
    assert_eq!(done.code(), Some(0), "{}", done.output());

    let said = std::fs::read_to_string(&summary).expect("the step summary was written");
    assert!(
        said.starts_with("## storage-server-dies (seed 7): PASS\n"),
        "{said}"
    );
    assert!(
        said.contains("| expectation | held | evidence |\n| --- | --- | --- |\n")
            && said.contains("| stuck_volumes | yes | "),
        "the verdict table: {said}"
    );
    let outputs = std::fs::read_to_string(&outputs).expect("the outputs were written");
    assert!(outputs.contains("verdict=pass\n"), "{outputs}");
    let run_dir = (outputs.lines())
        .find_map(|l| l.strip_prefix("run-dir="))
        .unwrap_or_else(|| panic!("no run-dir= in {outputs}"));
    assert!(
        run_dir.starts_with(tmp.path().to_str().expect("utf-8")),
        "{run_dir}"
    );
    for file in ["report.html", "junit.xml", "report.json"] {
        let path = std::path::Path::new(run_dir).join(file);
        assert!(path.is_file(), "{} for the artifact", path.display());
    }
}
