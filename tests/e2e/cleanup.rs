//! The harness leaves no process behind, however it is stopped.

use std::time::Duration;

use outage_lab_proto::{Event, RunPhase};

use crate::support::{ScenarioRun, wait_for_journal, wait_until_gone};

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
