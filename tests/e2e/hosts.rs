//! The compose deployment's mechanism without Docker: launcher hosts (`outage-lab host`) on their
//! own loopback addresses, and a harness (`run --hosts`) that starts the whole fleet through them.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use outage_lab_ebs_events::{Event, EventKind};
use outage_lab_proto::report::Verdict;

use crate::support::{
    Proc, calibrated, journal, poll_until, report, scenario, wait_for_journal, wait_until_gone,
};

const SERVERS: usize = 6;

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Live processes (not zombies) whose parent is one of `parents`.
fn children_of(parents: &BTreeSet<u32>) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    (entries.flatten())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| parent_of(pid).is_some_and(|p| parents.contains(&p)))
        .filter(|&pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            !stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'))
        })
        .collect()
}

/// One launcher per fixed service and `servers` storage launchers, each on a loopback address
/// of its own in `127.<net>.0.0/24`, registered in `state`; then a harness that runs the 2012
/// scenario on them into `out`. Returns (service, address, launcher) and the harness.
fn launchers_and_harness(
    tmp: &std::path::Path,
    net: u8,
    servers: usize,
) -> (Vec<(&'static str, String, Proc)>, Proc) {
    let state = tmp.join("state");
    let services = [
        "dns",
        "collector-old",
        "collector-new",
        "watchdog",
        "control",
    ]
    .into_iter()
    .chain(std::iter::repeat_n("storage", servers));
    let mut hosts = Vec::new();
    for (i, service) in services.enumerate() {
        let ip = format!("127.{net}.0.{}", i + 1);
        let proc = Proc::start(&[
            "host",
            "--listen",
            &format!("{ip}:0"),
            "--service",
            service,
            "--state",
            state.to_str().expect("utf-8"),
        ]);
        hosts.push((service, ip, proc));
    }
    let path = calibrated(&scenario("ebs-2012-10-22.yaml"), tmp);
    let harness = Proc::start(&[
        "run",
        path.to_str().expect("utf-8"),
        "--servers",
        &servers.to_string(),
        "--seed",
        "11",
        "--hosts",
        state.to_str().expect("utf-8"),
        "--out",
        tmp.join("run").to_str().expect("utf-8"),
    ]);
    (hosts, harness)
}

#[test]
fn a_run_on_launcher_hosts_plays_the_whole_chain_and_leaves_nothing() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("run");
    let (hosts, harness) = launchers_and_harness(tmp.path(), 61, SERVERS);

    // Mid-run, every process of the fleet is a child of a launcher, not of the harness.
    let faulted = wait_for_journal(&out, Duration::from_secs(90), |e| {
        e.event.kind() == EventKind::FaultInjected
    });
    assert!(faulted, "the timeline never started");
    let launcher_pids: BTreeSet<u32> = hosts.iter().map(|(_, _, p)| p.pid()).collect();
    let started: Vec<u32> = journal(&out)
        .iter()
        .filter_map(|e| match e.event {
            Event::ProcessStarted { pid, .. } => Some(pid),
            _ => None,
        })
        .collect();
    assert!(started.len() >= 2 * SERVERS + 5, "{started:?}");
    for pid in started {
        if let Some(parent) = parent_of(pid) {
            assert!(
                launcher_pids.contains(&parent),
                "pid {pid} was started by {parent}, not by a launcher {launcher_pids:?}"
            );
        }
    }

    let done = harness.wait(Duration::from_secs(180));
    assert_eq!(done.code(), Some(0), "{}", done.output());

    let report = report(&out);
    assert_eq!(report.verdict, Verdict::Pass);
    assert_eq!(report.servers.iter().filter(|s| s.stale).count(), 2);
    for s in &report.servers {
        assert_eq!(s.alarms.leak_at_ms.is_some(), s.stale, "{}: {s:#?}", s.id);
    }
    assert!(report.volumes.stuck_peak > 0, "{:?}", report.volumes);
    assert_eq!(report.volumes.stuck_final, 0, "{:?}", report.volumes);

    // Every storage process ran on its own launcher host, with that host's address.
    let storage_ips: BTreeSet<IpAddr> = hosts
        .iter()
        .filter(|(service, _, _)| *service == "storage")
        .map(|(_, ip, _)| ip.parse().expect("ip"))
        .collect();
    let mut seen_ips = BTreeSet::new();
    for entry in journal(&out) {
        if let Event::Ready { role, addrs } = &entry.event
            && role == "storage"
        {
            seen_ips.insert(addrs["http"].ip());
        }
    }
    assert_eq!(seen_ips, storage_ips, "one storage server per storage host");

    // The harness stopped everything through the launchers: nothing of the run is alive while
    // the launchers still are. (Roles started by a launcher name their config relative to the
    // directory it gave them, so they are found as its children, not by the run directory.)
    let left = poll_until(
        Duration::from_secs(3),
        || children_of(&launcher_pids),
        Vec::is_empty,
    );
    assert!(
        left.is_empty(),
        "launchers' children left running: {left:?}"
    );
    let left = wait_until_gone(out.to_str().expect("utf-8"), Duration::from_secs(3));
    assert!(left.is_empty(), "left running: {left:?}");

    // The watchdog read every process's memory through the launchers: it judged real numbers.
    let swept = journal(&out)
        .iter()
        .any(|e| matches!(&e.event, Event::RssSweep { samples } if samples.len() == 2 * SERVERS));
    assert!(swept, "no sweep covered every agent and storage process");
    drop(hosts);
}

#[test]
fn a_launcher_host_lost_mid_run_stops_the_run_naming_what_went_with_it() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("run");
    let (mut hosts, harness) = launchers_and_harness(tmp.path(), 62, 3);
    let faulted = wait_for_journal(&out, Duration::from_secs(90), |e| {
        e.event.kind() == EventKind::FaultInjected
    });
    assert!(faulted, "the timeline never started");

    // The machine of one storage server goes away: its launcher and, with it, its children.
    let (_, _, lost) = hosts.pop().expect("a storage launcher");
    lost.signal(libc::SIGKILL);
    let done = harness.wait(Duration::from_secs(60));
    assert_eq!(done.code(), Some(1), "{}", done.output());

    let report = report(&out);
    let row = crate::support::row(&report, "hosts_stayed_up");
    assert!(!row.passed);
    let named: BTreeSet<String> = (row.detail.split(": ").nth(1).unwrap_or_default())
        .split("; ")
        .next()
        .unwrap_or_default()
        .split(", ")
        .map(str::to_owned)
        .collect();
    let server = (named.iter())
        .find_map(|n| n.strip_prefix("storage-"))
        .unwrap_or_else(|| panic!("no storage server named: {}", row.detail));
    let expected = BTreeSet::from([format!("storage-{server}"), format!("agent-{server}")]);
    assert_eq!(
        named, expected,
        "one storage server and its agent: {}",
        row.detail
    );
    assert!(
        done.output().contains("lost with their launcher hosts"),
        "{}",
        done.output()
    );

    let launcher_pids: BTreeSet<u32> = hosts.iter().map(|(_, _, p)| p.pid()).collect();
    let left = poll_until(
        Duration::from_secs(3),
        || children_of(&launcher_pids),
        Vec::is_empty,
    );
    assert_eq!(left, Vec::<u32>::new(), "left running");
    drop(hosts);
}
