//! Any program as the reporting agent: two small Python agents of our own in the 2012 failure,
//! one that keeps every unsent report (the run fails and names it) and one that bounds its
//! queue (the run passes), and the refusal when the harness lacks the privileges to give each
//! agent its own `/etc/resolv.conf`.

use std::net::IpAddr;
use std::time::Duration;

use outage_lab_ebs_events::{Event, JournalEntry};
use outage_lab_proto::RunPhase;
use outage_lab_proto::report::Report;

use crate::support::{
    ScenarioRun, journal, poll_until, report, row, run, run_into, scenario, wait_until_gone,
};

const RUN_LIMIT: Duration = Duration::from_secs(120);

/// External agents need root here (a mount namespace each, DNS on port 53).
fn privileged() -> bool {
    crate::support::root_or_skip("an external agent (a mount namespace each, DNS on port 53)")
}

/// Runs `agents/<fixture>`; checks that nothing of it, its Python agents included, is left.
fn run_agents(fixture: &str, agent: &str) -> (Option<i32>, Report, Vec<JournalEntry>, String) {
    let (done, out, _tmp) = ScenarioRun::start(&format!("agents/{fixture}"), &[]).finish(RUN_LIMIT);
    let left = wait_until_gone(out.to_str().unwrap(), Duration::from_secs(3));
    assert!(left.is_empty(), "left behind: {left:?}");
    let agents_left = wait_until_gone(&format!("agents/{agent}"), Duration::from_secs(3));
    assert!(
        agents_left.is_empty(),
        "agents left behind: {agents_left:?}"
    );
    let log = std::fs::read_to_string(out.join("logs/agent-s000.log")).unwrap_or_default();
    (
        done.code(),
        report(&out),
        journal(&out),
        done.output() + &log,
    )
}

/// The dead collector's address as the stale DNS servers answered it, after the update.
fn dead_address_answers(entries: &[JournalEntry], report: &Report) -> u64 {
    let stale_dns: Vec<&str> = (report.servers.iter())
        .filter(|s| s.stale)
        .map(|s| s.dns_server.as_str())
        .collect();
    let dead: IpAddr = (entries.iter())
        .find_map(|e| match &e.event {
            Event::Ready { role, addrs } if role == "collector" && e.source == "collector-old" => {
                addrs.get("http").map(|a| a.ip())
            }
            _ => None,
        })
        .expect("the old collector announced its address");
    (entries.iter())
        .filter(|e| stale_dns.contains(&e.source.as_str()))
        .filter_map(|e| match &e.event {
            Event::DnsAnswers { answers, .. } => answers.get(&dead).copied(),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn an_agent_that_keeps_every_unsent_report_fails_the_run_by_name() {
    if !privileged() {
        return;
    }
    let (code, report, entries, output) = run_agents("hoarder.yaml", "hoarder.py");
    assert_eq!(code, Some(1), "{output}");
    let grow = row(&report, "stale_agents_grow_at_most");
    let stale: Vec<&str> = (report.servers.iter().filter(|s| s.stale))
        .map(|s| s.id.as_str())
        .collect();
    assert!(!grow.passed, "{grow:?}");
    assert!(
        stale.iter().any(|id| grow.detail.contains(id)),
        "the verdict names a stale server ({stale:?}): {grow:?}"
    );
    for held in ["fault_took_effect", "leak_alarm", "processes_stayed_up"] {
        assert!(
            row(&report, held).passed,
            "{:?}\n{output}",
            row(&report, held)
        );
    }
    assert!(
        dead_address_answers(&entries, &report) > 0,
        "the stale DNS servers answered the dead address: the agents resolved through the lab"
    );
}

#[test]
fn an_agent_that_bounds_its_queue_passes_the_same_test() {
    if !privileged() {
        return;
    }
    let (code, report, entries, output) = run_agents("bounded.yaml", "bounded.py");
    assert_eq!(code, Some(0), "{output}");
    assert!(row(&report, "fault_took_effect").passed);
    assert!(dead_address_answers(&entries, &report) > 0);
}

#[test]
fn without_the_privileges_an_external_agent_is_refused_before_anything_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let path = scenario("agents/hoarder.yaml");
    // Root without CAP_SYS_ADMIN in its bounding set loses it at exec; a user has none anyway.
    let done = if unsafe { libc::geteuid() } == 0 {
        let bin = crate::support::bin();
        let std_out = std::process::Command::new("setpriv")
            .args(["--bounding-set", "-sys_admin,-net_bind_service", "--"])
            .arg(bin)
            .args([
                "run",
                path.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ])
            .output()
            .expect("run setpriv (util-linux)");
        (
            std_out.status.code(),
            String::from_utf8_lossy(&std_out.stderr).into_owned(),
        )
    } else {
        let done = run_into(&path, &out, Duration::from_secs(20));
        (done.code(), done.stderr)
    };
    let (code, stderr) = done;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("CAP_SYS_ADMIN") && stderr.contains("compose"),
        "says what is needed and what works without it: {stderr}"
    );
    assert!(!out.exists(), "nothing was started");
}

/// Runs one of the shipped real-agent scenarios on 6 servers: whatever the agent does with its
/// memory is the result (printed), but the fault must take effect on it: its stale copies were
/// answered the dead address by their DNS server and never reached the replacement.
fn real_agent(fixture: &str, program: &str) {
    if !privileged() {
        return;
    }
    let found = std::path::Path::new(program).is_file()
        || std::process::Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .output()
            .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "{program} is not installed: run scripts/install-agents (Debian packages)"
    );
    let (done, out, _tmp) =
        ScenarioRun::start(&format!("agents/{fixture}"), &["--servers", "6"]).finish(RUN_LIMIT);
    let left = wait_until_gone(out.to_str().unwrap(), Duration::from_secs(5));
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(matches!(done.code(), Some(0 | 1)), "{}", done.output());
    let report = report(&out);
    let entries = journal(&out);
    assert!(
        row(&report, "fault_took_effect").passed,
        "{:?}",
        row(&report, "fault_took_effect")
    );
    assert!(dead_address_answers(&entries, &report) > 0);
    for s in &report.servers {
        let (first, peak) = (s.agent.rss_first_bytes, s.agent.rss_peak_bytes);
        assert!(first.is_some() && peak.is_some(), "{} was measured", s.id);
        println!(
            "{fixture} {} ({}): agent RSS {:.1} -> peak {:.1} MiB",
            s.id,
            if s.stale { "stale" } else { "fresh" },
            first.unwrap_or(0) as f64 / 1048576.0,
            peak.unwrap_or(0) as f64 / 1048576.0
        );
    }
}

#[test]
fn prometheus_in_agent_mode_goes_through_the_2012_fault() {
    real_agent("prometheus.yaml", "prometheus");
}

#[test]
fn collectd_with_write_http_goes_through_the_2012_fault() {
    real_agent("collectd.yaml", "/usr/sbin/collectd");
}

/// A scenario whose agent is `sh -c SCRIPT`, 3 servers, 6 seconds.
fn shell_agent_scenario(dir: &std::path::Path, script: &str, may_exit: bool) -> std::path::PathBuf {
    let text = format!(
        "name: shell-agent\nduration: 6s\nfleet: {{ servers: 3, memory_budget: 96MiB }}\n\
         dns: {{ servers: [dns-a, dns-b, dns-c], ttl: 1s }}\n\
         agent: {{ command: [sh, -c, {script:?}], may_exit: {may_exit} }}\n\
         timeline:\n  - replace_collector: {{ at: 1s }}\n  - dns_update: {{ at: 1s, propagate_to: [dns-a, dns-b] }}\n"
    );
    let path = dir.join(format!("shell-{may_exit}.yaml"));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn an_agent_that_exits_fails_processes_stayed_up_unless_it_may() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for may_exit in [false, true] {
        let path =
            shell_agent_scenario(tmp.path(), "echo said-on-stdout; sleep 2; exit 3", may_exit);
        let out = tmp.path().join(format!("run-{may_exit}"));
        let done = run(
            &[
                "run",
                path.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ],
            RUN_LIMIT,
        );
        let report = report(&out);
        let stayed_up = row(&report, "processes_stayed_up");
        assert_eq!(
            stayed_up.passed,
            may_exit,
            "may_exit {may_exit}: {stayed_up:?}\n{}",
            done.output()
        );
        if !may_exit {
            assert!(
                stayed_up.detail.contains("agent-s000") && stayed_up.detail.contains("exit code 3"),
                "{stayed_up:?}"
            );
        }
        let log = std::fs::read_to_string(out.join("logs/agent-s000.log")).unwrap();
        assert!(
            log.contains("said-on-stdout"),
            "the agent's stdout is in its log: {log}"
        );
    }
}

/// Live processes whose working directory is inside `dir`.
fn working_inside(dir: &std::path::Path) -> Vec<u32> {
    (std::fs::read_dir("/proc").unwrap().flatten())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|c| c.starts_with(dir))
        })
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            !stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .collect()
}

#[test]
fn what_an_agent_forked_dies_with_a_killed_harness_and_the_next_run_finds_nothing_to_reap() {
    if !privileged() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let env = [("OUTAGE_LAB_STATE_DIR", state.as_os_str())];
    let path = shell_agent_scenario(tmp.path(), "sleep 300 & sleep 300 & wait", false);
    let killed = tmp.path().join("killed");
    let harness = crate::support::Proc::start_with_env(
        &[
            "run",
            path.to_str().unwrap(),
            "--out",
            killed.to_str().unwrap(),
        ],
        &env,
    );
    let up = crate::support::wait_for_journal(&killed, Duration::from_secs(60), |e| {
        matches!(
            &e.event,
            Event::Phase {
                name: RunPhase::Timeline,
                ..
            }
        )
    });
    assert!(up, "the fleet never came up");
    let forked = poll_until(
        Duration::from_secs(10),
        || working_inside(&killed),
        |p| p.len() >= 3 * 2,
    );
    assert!(
        forked.len() >= 3 * 2,
        "each of the 3 agents forks two sleeps: {forked:?}"
    );
    harness.signal(libc::SIGKILL);
    harness.wait(Duration::from_secs(10));
    // The death signal reaches each agent's `unshare`, whose death ends the agent's PID
    // namespace and everything in it: the sleeps too, with no run needed to reap them.
    let left = poll_until(
        Duration::from_secs(3),
        || working_inside(&killed),
        Vec::is_empty,
    );
    assert_eq!(
        left,
        Vec::<u32>::new(),
        "outlived the harness, of {forked:?}"
    );

    let next = tmp.path().join("next");
    let done = crate::support::Proc::start_with_env(
        &[
            "run",
            path.to_str().unwrap(),
            "--out",
            next.to_str().unwrap(),
        ],
        &env,
    )
    .wait(RUN_LIMIT);
    assert!(
        !done.stdout.contains("forked by agent-s0"),
        "{}",
        done.output()
    );
}
