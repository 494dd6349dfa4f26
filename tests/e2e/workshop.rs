//! `outage-lab workshop` driven without a person: through `outage-lab ctl` (the control API), a
//! pseudo-terminal (Enter, Ctrl-C) and a killed harness. Each stop is checked against the
//! journal, and a freeze against the kernel: the processes' resident memory and the journal's
//! clock do not move while the run is frozen.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use outage_lab_ebs_events::{AlarmKind, Event, JournalEntry, ProcessRole, Role};
use serde_json::Value;

use crate::support::browser::DevTools;
use crate::support::pty::Terminal;
use crate::support::{Proc, bin, calibrated, journal, report, scenario, wait_until_gone};

/// A whole workshop of 6 servers, stops included, ends within this.
const WORKSHOP_LIMIT: Duration = Duration::from_secs(240);
/// A stop comes within this of the previous one going on (the longest gap is the timeline's
/// repair, about 18 s after the last stuck volume).
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// A workshop started in a temporary run directory.
struct Workshop {
    proc: Proc,
    served: std::cell::Cell<bool>,
    out: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Workshop {
    fn start(extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let out = tmp.path().join("run");
        let path = calibrated(&scenario("ebs-2012-10-22.yaml"), tmp.path());
        let mut args = vec!["workshop", path.to_str().expect("utf-8"), "--out"];
        args.push(out.to_str().expect("utf-8"));
        args.extend_from_slice(&["--servers", "6", "--seed", "11"]);
        args.extend_from_slice(extra);
        Self {
            proc: Proc::start(&args),
            served: std::cell::Cell::new(false),
            out,
            _tmp: tmp,
        }
    }

    /// `outage-lab ctl RUN_DIR <args>`: exit code and stdout.
    fn ctl(&self, args: &[&str]) -> (i32, String) {
        ctl(&self.out, args)
    }

    /// The control API's status.
    fn status(&self) -> Value {
        let (code, out) = self.ctl(&["status", "--json"]);
        assert_eq!(code, 0, "ctl status: {out}");
        serde_json::from_str(&out).expect("status is JSON")
    }

    /// Waits until the run is frozen at a stop later than `after`; `None` once the run is over.
    fn next_stop(&self, after: u64) -> Option<Value> {
        let deadline = Instant::now() + STOP_LIMIT;
        while Instant::now() < deadline {
            // The file comes when the control API is up and goes when the run ends.
            if self.out.join("workshop.json").exists() {
                self.served.set(true);
            } else if self.served.get() {
                return None;
            }
            let (code, out) = self.ctl(&["status", "--json"]);
            if code == 0 {
                let status: Value = serde_json::from_str(&out).expect("status is JSON");
                let number = status["stop"]["number"].as_u64().unwrap_or(0);
                if status["frozen"] == true && number > 0 && number != after {
                    return Some(status);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("no stop within {STOP_LIMIT:?} after stop {after}");
    }
}

fn ctl(run_dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(bin())
        .arg("ctl")
        .arg(run_dir)
        .args(args)
        .output()
        .expect("run outage-lab ctl");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// The pids of the processes a stop freezes (agents, storage, control, watchdog), from the
/// journal.
fn frozen_pids(entries: &[JournalEntry]) -> Vec<u32> {
    (entries.iter())
        .filter_map(|e| match &e.event {
            Event::ProcessStarted { role, pid, .. } => match Role::from_name(role)? {
                Role::Agent | Role::Storage | Role::Control | Role::Watchdog => Some(*pid),
                Role::Dns | Role::Collector => None,
            },
            _ => None,
        })
        .collect()
}

/// `(state, resident pages)` of a process, as the kernel tells them.
fn kernel_view(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit_once(") ")?.1.chars().next()?;
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let resident = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some((state, resident))
}

/// Holds the run's frozen processes and its journal clock to not moving for 3 s.
fn assert_nothing_moves_while_frozen(w: &Workshop, status: &Value) {
    let entries = journal(&w.out);
    let pids = frozen_pids(&entries);
    let last_t = |entries: &[JournalEntry]| entries.iter().map(|e| e.t_ms).max();
    let before: Vec<_> = pids.iter().map(|p| kernel_view(*p)).collect();
    assert!(
        before.iter().flatten().all(|(state, _)| *state == 'T'),
        "every agent, storage, control and watchdog process is stopped: {before:?}"
    );
    std::thread::sleep(Duration::from_secs(3));
    let after: Vec<_> = pids.iter().map(|p| kernel_view(*p)).collect();
    assert_eq!(before, after, "resident memory moved while frozen");
    assert_eq!(
        last_t(&entries),
        last_t(&journal(&w.out)),
        "the journal's clock moved while frozen"
    );
    assert_eq!(
        w.status()["t_ms"],
        status["t_ms"],
        "the lab clock moved while frozen"
    );
}

/// Checks what a stop shows against what the journal recorded.
fn assert_stop_matches_the_journal(w: &Workshop, status: &Value) {
    let entries = journal(&w.out);
    let stop = &status["stop"];
    let recorded = (entries.iter().rev())
        .find_map(|e| match &e.event {
            Event::WorkshopStop { link, evidence, .. } => Some((link.clone(), evidence.clone())),
            _ => None,
        })
        .expect("a workshop_stop in the journal");
    assert_eq!(stop["link"].as_str(), Some(recorded.0.as_str()));
    assert_eq!(stop["evidence"].as_str(), Some(recorded.1.as_str()));
    for field in ["title", "when_2012", "then_2012", "question"] {
        assert!(
            stop["narration"][field]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{field} of {stop}"
        );
    }
    for row in status["monitors"]["servers"].as_array().expect("servers") {
        let id = row["id"].as_str().expect("id");
        let last_rss = (entries.iter().rev()).find_map(|e| match &e.event {
            Event::RssSweep { samples } => (samples.iter())
                .find(|s| s.server == id && s.role == ProcessRole::Agent)
                .map(|s| s.rss_bytes),
            _ => None,
        });
        assert_eq!(
            row["agent_rss_bytes"].as_u64(),
            Some(last_rss.unwrap_or(0)),
            "{id}"
        );
        let alarmed = entries.iter().any(|e| {
            matches!(&e.event, Event::Alarm { alarm: AlarmKind::Leak, server, role: Some(ProcessRole::Agent), .. } if server == id)
        });
        assert_eq!(row["leak_alarm"].as_bool(), Some(alarmed), "{id}");
    }
}

/// What a room that acted at one stop ended with.
struct RoomRun {
    /// The links stopped at, in order.
    seen: Vec<String>,
    entries: Vec<JournalEntry>,
    /// `workshop_outcome`: detect_ms, mitigate_ms, detail.
    outcome: (Option<u64>, Option<u64>, String),
    /// The lab time of the stop the room acted at.
    acted_ms: Option<u64>,
    stuck_peak: u64,
}

/// The investigation at a stop: the collector has gone silent on exactly the stale agents, and
/// they share one DNS server. Returns (server ids, that DNS server).
fn silent_agents(status: &Value) -> (Vec<String>, String) {
    let rows = status["monitors"]["servers"].as_array().expect("servers");
    let silent: Vec<(&str, &str)> = (rows.iter())
        .filter(|r| r["silent"] == true)
        .map(|r| {
            (
                r["id"].as_str().unwrap_or(""),
                r["dns_server"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(!silent.is_empty(), "the collector misses someone: {status}");
    let dns = silent[0].1;
    assert!(silent.iter().all(|(_, d)| *d == dns), "{silent:?}");
    (
        silent.iter().map(|(id, _)| (*id).to_owned()).collect(),
        dns.to_owned(),
    )
}

/// A workshop driven through ctl: every stop checked against the journal (and the first for a
/// freeze that holds), the stale DNS server repaired by "ann" and its agents restarted by "bob"
/// at the stop `act_at`, Next everywhere else.
fn room_acting_at(act_at: &str) -> RoomRun {
    let w = Workshop::start(&[]);
    let (mut number, mut seen, mut acted_ms) = (0, Vec::new(), None);
    while let Some(status) = w.next_stop(number) {
        number = status["stop"]["number"].as_u64().expect("number");
        let link = status["stop"]["link"].as_str().expect("link").to_owned();
        assert_stop_matches_the_journal(&w, &status);
        if seen.is_empty() {
            assert_nothing_moves_while_frozen(&w, &status);
        }
        if link == act_at {
            let (servers, dns) = silent_agents(&status);
            let (code, out) = w.ctl(&["repair", &dns, "--as", "ann"]);
            assert_eq!(code, 0, "{out}");
            let mut restart = vec!["restart"];
            restart.extend(servers.iter().map(String::as_str));
            restart.extend(["--as", "bob"]);
            let (code, out) = w.ctl(&restart);
            assert_eq!(
                (code, out.contains("as the run goes on")),
                (0, true),
                "{out}"
            );
            acted_ms = status["t_ms"].as_u64();
        }
        seen.push(link);
        let (code, out) = w.ctl(&["next"]);
        assert_eq!(code, 0, "{out}");
    }
    let done = w.proc.wait(WORKSHOP_LIMIT);
    assert!(matches!(done.code(), Some(0 | 1)), "{}", done.output());
    let left = wait_until_gone(w.out.to_str().expect("utf-8"), Duration::from_secs(3));
    assert!(left.is_empty(), "left behind: {left:?}");
    let entries = journal(&w.out);
    let outcome = (entries.iter())
        .find_map(|e| match &e.event {
            Event::WorkshopOutcome {
                detect_ms,
                mitigate_ms,
                detail,
            } => Some((*detect_ms, *mitigate_ms, detail.clone())),
            _ => None,
        })
        .expect("a workshop_outcome");
    let actions: Vec<_> = (entries.iter())
        .filter_map(|e| match &e.event {
            Event::ParticipantAction {
                who,
                action,
                correct: true,
                ..
            } => Some((who.clone(), action.clone())),
            _ => None,
        })
        .collect();
    let expected = [("ann", "repair_dns"), ("bob", "restart_agents")];
    assert_eq!(actions, expected.map(|(w, a)| (w.to_owned(), a.to_owned())));
    let stuck_peak = report(&w.out).volumes.stuck_peak;
    RoomRun {
        seen,
        entries,
        outcome,
        acted_ms,
        stuck_peak,
    }
}

#[test]
fn a_whole_workshop_driven_by_ctl_stops_at_every_link_and_times_a_late_mitigation() {
    let room = room_acting_at("failover_without_capacity");
    let every: Vec<&str> = [
        "collector_replaced",
        "dns_updated",
        "first_failed_report",
        "first_leak_alarm",
        "aggregate_alarm_silent",
        "first_server_cannot_serve",
        "first_stuck_volume",
        "failover_without_capacity",
        "repair",
        "recovery",
    ]
    .to_vec();
    assert_eq!(
        room.seen[..3],
        every[..3],
        "the timeline's links first, in chain order"
    );
    let mut seen = room.seen.clone();
    seen.sort_by_key(|l| every.iter().position(|e| e == l));
    assert_eq!(seen, every, "every link, once");
    let (detect, mitigate, detail) = &room.outcome;
    assert!(room.acted_ms.is_some());
    assert_eq!(
        (*detect, *mitigate),
        (room.acted_ms, room.acted_ms),
        "{detail}"
    );
    assert!(detail.contains("after the first stuck volume"), "{detail}");
    assert!(room.stuck_peak > 0);
    let recorded_stop = (room.entries.iter())
        .find(|e| matches!(&e.event, Event::WorkshopStop { link, .. } if link == "failover_without_capacity"))
        .map(|e| e.t_ms);
    assert_eq!(
        recorded_stop, room.acted_ms,
        "ctl status and the journal agree on the stop's time"
    );
}

#[test]
fn a_room_that_repairs_dns_and_restarts_the_stale_agents_in_time_sees_no_stuck_volume() {
    let room = room_acting_at("first_leak_alarm");
    assert_eq!(
        room.seen[..4],
        [
            "collector_replaced",
            "dns_updated",
            "first_failed_report",
            "first_leak_alarm"
        ]
    );
    assert!(
        !room.seen.iter().any(|l| l == "first_stuck_volume"),
        "{:?}",
        room.seen
    );
    let (detect, mitigate, detail) = &room.outcome;
    assert_eq!(
        (*detect, *mitigate),
        (room.acted_ms, room.acted_ms),
        "{detail}"
    );
    assert!(
        detail.contains("No volume got stuck: you fixed it"),
        "{detail}"
    );
    assert_eq!(room.stuck_peak, 0);
}

/// In slow motion too (the run frozen one second of every two, some forty freezes beside the
/// ten stops), the 2012 story holds: freezing changes nothing the checks can see.
#[test]
fn a_room_that_does_nothing_sees_2012_stop_by_stop() {
    let started = Instant::now();
    let w = Workshop::start(&["--auto", "0.3", "--speed", "0.5"]);
    let done = w.proc.wait(WORKSHOP_LIMIT);
    // 46 s of lab time at half speed: a hold of a second after each of them.
    assert!(
        started.elapsed() >= Duration::from_secs(85),
        "slow motion held the run {:?}",
        started.elapsed()
    );
    assert_eq!(
        done.code(),
        Some(0),
        "the 2012 story holds\n{}",
        done.output()
    );
    let entries = journal(&w.out);
    let stops: Vec<(u32, u64)> = (entries.iter())
        .filter_map(|e| match &e.event {
            Event::WorkshopStop { number, .. } => Some((*number, e.t_ms)),
            _ => None,
        })
        .collect();
    let mut numbers: Vec<u32> = stops.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        numbers[..3],
        [1, 2, 3],
        "the timeline's links first, in chain order"
    );
    // Later links come in the order the run reaches them (a stale agent may outgrow the
    // aggregate alarm's headroom before its leak alarm fires).
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=10).collect::<Vec<_>>(), "every link, once");
    let frozen: Vec<u64> = (entries.iter())
        .filter_map(|e| match &e.event {
            Event::WorkshopResumed { frozen_ms, .. } => Some(*frozen_ms),
            _ => None,
        })
        .collect();
    assert_eq!(frozen.len(), 10);
    assert!(frozen.iter().all(|ms| *ms >= 300), "{frozen:?}");
    assert!(done.stdout.contains("as in 2012"), "{}", done.output());
    assert!(report(&w.out).volumes.stuck_peak > 0);
}

#[test]
fn a_harness_killed_at_a_stop_leaves_no_process_frozen_or_not() {
    let w = Workshop::start(&[]);
    let status = w.next_stop(0).expect("a first stop");
    assert_eq!(status["stop"]["number"], 1);
    w.proc.signal(libc::SIGKILL);
    let left = wait_until_gone(w.out.to_str().expect("utf-8"), Duration::from_secs(5));
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn ctl_refuses_what_it_cannot_do_and_says_why() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (code, out) = ctl(tmp.path(), &["status"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("is not a live workshop"), "{out}");
    let w = Workshop::start(&[]);
    w.next_stop(0).expect("a first stop");
    let (code, out) = w.ctl(&["repair", "dns-z"]);
    assert_eq!(
        (code, out.contains("no DNS server \"dns-z\"")),
        (1, true),
        "{out}"
    );
    let (code, out) = w.ctl(&["restart", "s999"]);
    assert_eq!((code, out.contains("s000 to s005")), (1, true), "{out}");
    let token = w.out.join("admin-token");
    std::fs::write(&token, "not-the-token").expect("overwrite the token");
    let (code, out) = w.ctl(&["next"]);
    assert_eq!(
        (code, out.contains("needs the run's token")),
        (1, true),
        "{out}"
    );
}

#[test]
fn on_a_terminal_enter_goes_on_and_ctrl_c_at_a_stop_stops_everything() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = tmp.path().join("run");
    let path = calibrated(&scenario("ebs-2012-10-22.yaml"), tmp.path());
    let (path, out_arg) = (path.to_str().expect("utf-8"), out.to_str().expect("utf-8"));
    let args = [
        "workshop",
        path,
        "--out",
        out_arg,
        "--servers",
        "3",
        "--seed",
        "11",
    ];
    let mut term = Terminal::start(&args);
    term.wait_for("stop 1/10: A collector is replaced", STOP_LIMIT);
    term.wait_for("press Enter to go on", Duration::from_secs(5));
    term.type_keys(b"\r");
    term.wait_for(
        "stop 2/10: DNS changes on some servers only",
        Duration::from_secs(10),
    );
    term.wait_for("the facilitator (Enter): went on", Duration::from_secs(5));
    // Ctrl-C while frozen at stop 2: SIGINT to the harness and the run's processes alike.
    term.type_keys(b"\x03");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = term.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "Ctrl-C did not end the workshop:\n{}",
            term.seen.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130), "{}", term.seen.lock().unwrap());
    let left = wait_until_gone(out_arg, Duration::from_secs(3));
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn a_click_on_next_in_the_live_page_really_advances_the_run() {
    let w = Workshop::start(&["--serve"]);
    let first = w.next_stop(0).expect("a first stop");
    let endpoints: Value = serde_json::from_str(
        &std::fs::read_to_string(w.out.join("endpoints.json")).expect("endpoints.json"),
    )
    .expect("JSON");
    let page = (endpoints.as_array().expect("a list").iter())
        .find(|e| e["kind"] == "live")
        .and_then(|e| e["url"].as_str())
        .expect("the live page's URL")
        .to_owned();
    let token = std::fs::read_to_string(w.out.join("admin-token")).expect("the run's token");
    let profile = tempfile::tempdir().expect("profile");
    let mut chrome = DevTools::start(profile.path());
    let url = format!("{page}#token={}", token.trim());
    chrome.call("Page.navigate", serde_json::json!({ "url": url }));
    chrome.wait_until(
        "document.getElementById('ws-title').textContent.startsWith('stop 1 of 10') && !document.getElementById('ws-next').disabled",
        Duration::from_secs(20),
    );
    let rows = chrome.eval("document.querySelectorAll('#ws-monitors tr').length");
    assert_eq!(rows, 7, "a header and one row per server");
    chrome.click("ws-next");
    let second = w.next_stop(1).expect("a second stop");
    assert_eq!(second["stop"]["number"], 2, "{first}\n{second}");
    chrome.wait_until(
        "document.getElementById('ws-title').textContent.startsWith('stop 2 of 10')",
        Duration::from_secs(20),
    );
    let went_on = journal(&w.out).into_iter().any(|e| {
        matches!(&e.event, Event::ParticipantAction { who, action, .. } if who == "the live page" && action == "next")
    });
    assert!(went_on, "the journal records who went on");
}
