//! Safe on anyone's machine: memory containment, reaping what a crashed run left, and runs that
//! share a machine without interfering.

use std::process::{Command, Stdio};
use std::time::Duration;

use outage_lab_proto::report::Verdict;

use crate::support::{Proc, ScenarioRun, alarms, report, run, run_into, scenario, wait_until_gone};

#[test]
fn an_oom_sized_agent_is_refused_with_exit_2_before_anything_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("oom.yaml");
    let text = std::fs::read_to_string(scenario("ebs-2012-10-22.yaml")).unwrap();
    let ceiling = text
        .lines()
        .find(|l| l.trim_start().starts_with("ceiling:"))
        .expect("the 2012 scenario has a leak ceiling");
    std::fs::write(&path, text.replace(ceiling, "    ceiling: 64GiB")).unwrap();
    let out = tmp.path().join("run");
    let done = run_into(&path, &out, Duration::from_secs(20));
    assert_eq!(done.code(), Some(2), "{}", done.output());
    assert!(
        done.stderr.contains("worst case") && done.stderr.contains("over the limit"),
        "{}",
        done.output()
    );
    assert!(!out.exists(), "nothing may start for a refused scenario");
}

#[test]
fn a_crashed_runs_leftovers_are_reaped_only_when_provably_its_own() {
    let state = tempfile::tempdir().unwrap();
    let fake_run = state.path().join("crashed-run");
    // Two stand-ins for processes a crashed run left: both name the crashed run's directory.
    let spawn = || {
        Command::new("sh")
            .args(["-c", "sleep 60", fake_run.to_str().unwrap()])
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut orphan = spawn();
    let mut stranger = spawn();
    // A harness that is gone: a pid that existed and was reaped.
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id();
    gone.wait().unwrap();
    let start = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat.rsplit_once(") ")
            .unwrap()
            .1
            .split_whitespace()
            .nth(19)
            .unwrap()
            .parse()
            .unwrap()
    };
    let run_dir = fake_run.display().to_string();
    let line = |pid: u32, start: u64, name: &str| {
        format!(r#"{{"pid":{pid},"start":{start},"run_dir":"{run_dir}","name":"{name}"}}"#)
    };
    let ledger = [
        line(gone_pid, 1, "harness"),
        line(orphan.id(), start(orphan.id()), "agent-s000"),
        // Wrong start time: the same pid could have been recycled; it must be left alone.
        line(stranger.id(), start(stranger.id()) + 1, "agent-s001"),
    ]
    .join("\n");
    std::fs::write(
        state.path().join(format!("ledger-{gone_pid}-1.jsonl")),
        ledger + "\n",
    )
    .unwrap();

    let out = state.path().join("run");
    let done = Proc::start_with_env(
        &[
            "run",
            scenario("impossible-expectation.yaml").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[("OUTAGE_LAB_STATE_DIR", state.path().as_os_str())],
    )
    .wait(Duration::from_secs(120));
    let stdout = &done.stdout;
    assert!(
        stdout.contains(&format!(
            "reaped a process left behind: agent-s000 (pid {})",
            orphan.id()
        )),
        "{}",
        done.output()
    );
    assert!(
        !stdout.contains("agent-s001"),
        "a process whose identity was not proven was touched: {}",
        done.output()
    );

    let orphan_status = orphan.wait().unwrap();
    assert!(
        orphan_status.code().is_none(),
        "the orphan should have been killed, it exited with {orphan_status}"
    );
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "the stranger must still be running"
    );
    let _ = stranger.kill();
    let _ = stranger.wait();
    // The crashed run's ledger is gone, and this run closed its own.
    let left: Vec<_> = std::fs::read_dir(state.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("ledger-"))
        .collect();
    assert!(left.is_empty(), "ledgers left: {left:?}");
}

#[test]
fn two_default_runs_started_together_both_pass() {
    let a = ScenarioRun::start("ebs-2012-10-22.yaml", &["--servers", "6", "--seed", "1"]);
    let b = ScenarioRun::start("ebs-2012-10-22.yaml", &["--servers", "6", "--seed", "2"]);
    let (done_a, out_a, _ta) = a.finish(Duration::from_secs(240));
    let (done_b, out_b, _tb) = b.finish(Duration::from_secs(240));
    assert_eq!(
        done_a.code(),
        Some(0),
        "{}\nalarms:\n{}",
        done_a.output(),
        alarms(&out_a)
    );
    assert_eq!(
        done_b.code(),
        Some(0),
        "{}\nalarms:\n{}",
        done_b.output(),
        alarms(&out_b)
    );
    assert_eq!(report(&out_a).verdict, Verdict::Pass);
    assert_eq!(report(&out_b).verdict, Verdict::Pass);
    for out in [&out_a, &out_b] {
        assert!(wait_until_gone(out.to_str().unwrap(), Duration::from_secs(3)).is_empty());
    }
}

#[test]
fn admin_apis_bound_off_loopback_refuse_to_start_without_a_token() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("c.json");
    std::fs::write(&config, "{}").unwrap();
    let config = config.to_str().unwrap();
    // The token check comes before any bind, so nothing listens off loopback in this test.
    for args in [
        vec!["watchdog", "--config", config, "--listen", "0.0.0.0:0"],
        vec![
            "dns",
            "--config",
            config,
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "0.0.0.0:0",
        ],
    ] {
        let done = run(&args, Duration::from_secs(20));
        assert_eq!(done.code(), Some(2), "{args:?}: {}", done.output());
        assert!(
            done.stderr.contains("without a token")
                && done.stderr.contains("OUTAGE_LAB_ADMIN_TOKEN"),
            "{}",
            done.output()
        );
        assert!(
            !done.stdout.contains("ready"),
            "it must not serve: {}",
            done.output()
        );
    }
}
