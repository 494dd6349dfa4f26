//! The harness leaves no process behind, however it is stopped, and a run after a killed one
//! removes the control groups it left.

use std::path::{Path, PathBuf};
use std::time::Duration;

use outage_lab_ebs_events::{Event, JournalEntry};
use outage_lab_proto::RunPhase;

use crate::support::{
    Proc, ScenarioRun, calibrated, journal, root_or_skip, scenario, wait_for_journal,
    wait_until_gone,
};

/// Starts the 2012 scenario, waits until the fleet is up, sends `sig` to the harness, and checks
/// that every process of the run is gone within 3 seconds.
fn stop_mid_run(sig: i32, expected_code: Option<i32>) {
    let ScenarioRun {
        out,
        proc: harness,
        _tmp,
    } = ScenarioRun::start("ebs-2012-10-22.yaml", &["--servers", "6"]);
    let up = wait_for_journal(&out, Duration::from_secs(60), |e| {
        matches!(
            &e.event,
            Event::Phase {
                name: RunPhase::Timeline,
                ..
            }
        )
    });
    assert!(up, "the fleet never came up");
    let run_dir = out.to_str().unwrap().to_owned();
    let before = crate::support::live_processes_mentioning(&run_dir);
    assert!(
        before.len() >= 6 * 2 + 3,
        "expected the fleet to be running, found {before:?}"
    );

    harness.signal(sig);
    let done = harness.wait(Duration::from_secs(30));
    if let Some(code) = expected_code {
        assert_eq!(done.code(), Some(code), "{}", done.output());
    }
    let left = wait_until_gone(&run_dir, Duration::from_secs(3));
    assert!(
        left.is_empty(),
        "processes of the run still alive 3 s after the harness stopped: {left:?}"
    );
}

#[test]
fn ctrl_c_mid_run_stops_every_process_and_exits_130() {
    stop_mid_run(libc::SIGINT, Some(130));
}

#[test]
fn sigkill_of_the_harness_takes_every_child_with_it() {
    stop_mid_run(libc::SIGKILL, None);
}

#[test]
fn sigterm_mid_run_stops_every_process_and_exits_130() {
    stop_mid_run(libc::SIGTERM, Some(130));
}

/// The control group directory the `agent_memory_limit` fix made, from its journal line
/// (`in place: memory cgroup v1 under DIR (...)`); `None` until it is there.
fn limit_cgroup(run_dir: &Path) -> Option<PathBuf> {
    journal(run_dir).into_iter().find_map(|e| match e.event {
        Event::FixApplied { fix, detail, .. } if fix == "agent_memory_limit" => {
            let (_, rest) = detail.split_once(" under ")?;
            Some(PathBuf::from(rest.split_once(" (")?.0))
        }
        _ => None,
    })
}

#[test]
fn the_memory_cgroups_of_a_sigkilled_harness_are_removed_by_the_next_run() {
    if !root_or_skip("memory cgroups") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let env = [("OUTAGE_LAB_STATE_DIR", state.as_os_str())];
    let path = calibrated(&scenario("ebs-2012-10-22.yaml"), tmp.path());
    let killed = tmp.path().join("killed");
    let harness = Proc::start_with_env(
        &[
            "run",
            path.to_str().unwrap(),
            "--servers",
            "3",
            "--fix",
            "agent_memory_limit",
            "--out",
            killed.to_str().unwrap(),
        ],
        &env,
    );
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
        wait_for_journal(&killed, Duration::from_secs(60), timeline),
        "the fleet never came up"
    );
    let cgroup = limit_cgroup(&killed).expect("the limit is a memory cgroup when run as root");
    harness.signal(libc::SIGKILL);
    harness.wait(Duration::from_secs(10));
    assert!(wait_until_gone(killed.to_str().unwrap(), Duration::from_secs(3)).is_empty());
    assert!(
        cgroup.is_dir(),
        "the crash left {} behind",
        cgroup.display()
    );

    let next = tmp.path().join("next");
    let done = Proc::start_with_env(
        &[
            "run",
            scenario("impossible-expectation.yaml").to_str().unwrap(),
            "--out",
            next.to_str().unwrap(),
        ],
        &env,
    )
    .wait(Duration::from_secs(120));
    assert!(
        done.stdout.contains(&format!(
            "the control group {} of the crashed run",
            cgroup.display()
        )),
        "{}",
        done.output()
    );
    assert!(!cgroup.exists(), "{} is still there", cgroup.display());
}
