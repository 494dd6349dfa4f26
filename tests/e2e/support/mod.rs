//! Shared helpers for the end-to-end tests: the real binary, run as a child process with a
//! deadline, killed and reaped on drop so a failing test leaves nothing behind.

#![allow(dead_code)]

pub mod browser;
pub mod calibration;
pub mod pty;
pub mod role;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use outage_lab_ebs_events::{EventKind, JournalEntry};
use outage_lab_proto::report::{ExpectationResult, Report};

/// The binary under test, built by Cargo for this test target.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_outage-lab"))
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fixture scenario by file name.
pub fn scenario(name: &str) -> PathBuf {
    repo().join("fixtures/scenarios").join(name)
}

/// A running `outage-lab` process. Dropping it sends SIGTERM, waits up to 5 s, then SIGKILLs and
/// reaps, so a panicking test cannot leak it.
pub struct Proc {
    /// The program's file name, for messages.
    program: String,
    child: Option<Child>,
    stdout: Option<JoinHandle<String>>,
    stderr: Option<JoinHandle<String>>,
}

/// How a process ended and what it printed.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    /// Everything the process printed, for assertion messages, led by [`Finished::verdict`]:
    /// a CI log may keep only the start of a long failure.
    pub fn output(&self) -> String {
        format!(
            "--- verdict ---\n{}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.verdict(),
            self.stdout,
            self.stderr
        )
    }

    /// The lines of stdout that say how a run or an experiment came out: its failed rows, its
    /// pace and its verdict, or an experiment's failed expectations.
    pub fn verdict(&self) -> String {
        let says = |l: &&str| {
            l.split_whitespace().nth(1) == Some("NO")
                || ["verdict:", "pace:", "expect FAILED"]
                    .iter()
                    .any(|p| l.starts_with(p))
        };
        self.stdout
            .lines()
            .filter(says)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Proc {
    /// Starts `outage-lab <args>`; stdout and stderr are read on their own threads, so a chatty
    /// child never blocks and deadlines stay real.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    /// Like [`Proc::start`], with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Self {
        Self::start_program(&bin(), args, env)
    }

    /// Like [`Proc::start_with_env`], for another program (a script of the repository that
    /// runs outage-lab).
    pub fn start_program(program: &Path, args: &[&str], env: &[(&str, &std::ffi::OsStr)]) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        let stdout = child.stdout.take().map(drain);
        let stderr = child.stderr.take().map(drain);
        let program = program.file_name().unwrap_or_default();
        Self {
            program: program.to_string_lossy().into_owned(),
            child: Some(child),
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: i32) {
        let pid = i32::try_from(self.pid()).expect("pid fits");
        // SAFETY: kill(2) has no memory-safety preconditions; the pid is our unreaped child.
        unsafe {
            libc::kill(pid, sig);
        }
    }

    /// Waits up to `limit` for the process to exit; panics (after killing it) on timeout.
    pub fn wait(mut self, limit: Duration) -> Finished {
        let mut child = self.child.take().expect("child present");
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let out = self
                    .stdout
                    .take()
                    .map(|h| h.join().unwrap_or_default())
                    .unwrap_or_default();
                let err = self
                    .stderr
                    .take()
                    .map(|h| h.join().unwrap_or_default())
                    .unwrap_or_default();
                panic!(
                    "{} did not exit within {limit:?}\n--- stdout ---\n{out}\n--- stderr ---\n{err}",
                    self.program
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        Finished {
            status,
            stdout: self
                .stdout
                .take()
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default(),
            stderr: self
                .stderr
                .take()
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(None) = child.try_wait() {
                let pid = i32::try_from(child.id()).unwrap_or(0);
                // SAFETY: as above.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
                let deadline = Instant::now() + Duration::from_secs(5);
                while Instant::now() < deadline {
                    if let Ok(Some(_)) = child.try_wait() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// Runs `outage-lab <args>` to the end within `limit`.
pub fn run(args: &[&str], limit: Duration) -> Finished {
    Proc::start(args).wait(limit)
}

/// Runs `outage-lab run <scenario> --out <out>` to the end within `limit`.
pub fn run_into(scenario: &Path, out: &Path, limit: Duration) -> Finished {
    let (scenario, out) = (scenario.to_str(), out.to_str());
    run(
        &[
            "run",
            scenario.expect("utf-8 path"),
            "--out",
            out.expect("utf-8 path"),
        ],
        limit,
    )
}

/// Reads a run's report.
pub fn report(run_dir: &Path) -> Report {
    let text = std::fs::read_to_string(run_dir.join("report.json")).expect("report.json exists");
    serde_json::from_str(&text).expect("report.json parses as the documented schema")
}

/// Reads a run's journal.
pub fn journal(run_dir: &Path) -> Vec<JournalEntry> {
    let text = std::fs::read_to_string(run_dir.join("journal.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad journal line {l:?}: {e}")))
        .collect()
}

/// Pids of live processes whose command line mentions `needle` (e.g. a run directory), other
/// than zombies. Used to prove a run left nothing behind: every role process of a run is started
/// with a config path inside the run directory, so this identifies them without guessing.
pub fn live_processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if !cmdline.contains(needle) {
            continue;
        }
        let state = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Field 3 of stat is the state; Z = zombie (already dead, waiting for its parent).
        let zombie = state
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'));
        if !zombie {
            found.push((pid, cmdline));
        }
    }
    found
}

/// Asks `probe` every 50ms until what it says is `done`, for at most `limit`; returns what it
/// said last (so an assertion after it shows what was still wrong). The one deadline loop of
/// the tests.
pub fn poll_until<T>(
    limit: Duration,
    mut probe: impl FnMut() -> T,
    done: impl Fn(&T) -> bool,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let value = probe();
        if done(&value) || Instant::now() >= deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until no live process mentions `needle`, up to `limit`; returns what is left.
pub fn wait_until_gone(needle: &str, limit: Duration) -> Vec<(u32, String)> {
    poll_until(limit, || live_processes_mentioning(needle), Vec::is_empty)
}

/// The verdict row `name` of a report; a report without it fails the test, listing the rows.
pub fn row<'a>(report: &'a Report, name: &str) -> &'a ExpectationResult {
    (report.expectations.iter())
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no {name} row in {:#?}", report.expectations))
}

/// Whether tests that need root run here: as root they do; otherwise the test fails, unless
/// `OUTAGE_LAB_SKIP_ROOT_TESTS=1` says on purpose that they are skipped (a green run then says
/// SKIPPED, and never passes silently without running).
pub fn root_or_skip(what: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let skip = std::env::var("OUTAGE_LAB_SKIP_ROOT_TESTS").is_ok_and(|v| v == "1");
    assert!(
        skip,
        "{what} needs root; run the tests as root, or set OUTAGE_LAB_SKIP_ROOT_TESTS=1 to skip it on purpose"
    );
    eprintln!("SKIPPED (OUTAGE_LAB_SKIP_ROOT_TESTS=1): {what} needs root");
    false
}

/// Waits until the journal contains an entry satisfying `pred`, up to `limit`.
pub fn wait_for_journal(
    run_dir: &Path,
    limit: Duration,
    pred: impl Fn(&JournalEntry) -> bool,
) -> bool {
    let seen = || {
        let text = std::fs::read_to_string(run_dir.join("journal.jsonl")).unwrap_or_default();
        // The journal is written as the run goes; a half-written last line is skipped.
        (text.lines())
            .filter_map(|l| serde_json::from_str::<JournalEntry>(l).ok())
            .any(|e| pred(&e))
    };
    poll_until(limit, seen, |seen| *seen)
}

/// A scenario run into its own temporary run directory.
pub struct ScenarioRun {
    /// Holds the temporary directory for as long as the test needs it.
    pub _tmp: tempfile::TempDir,
    /// The run directory (`--out`).
    pub out: PathBuf,
    /// The harness process.
    pub proc: Proc,
}

impl ScenarioRun {
    /// Starts `outage-lab run fixtures/scenarios/<fixture> --out <tmp>/run <extra...>`.
    pub fn start(fixture: &str, extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let out = tmp.path().join("run");
        let path = calibrated(&scenario(fixture), tmp.path());
        let mut args = vec![
            "run",
            path.to_str().expect("utf-8 path"),
            "--out",
            out.to_str().expect("utf-8 path"),
        ];
        args.extend_from_slice(extra);
        let proc = Proc::start(&args);
        Self {
            _tmp: tmp,
            out,
            proc,
        }
    }

    /// Runs to the end within `limit`; returns how it ended and the run directory's guard.
    pub fn finish(self, limit: Duration) -> (Finished, PathBuf, tempfile::TempDir) {
        (self.proc.wait(limit), self.out, self._tmp)
    }
}

/// The scenario as the binary under test needs it: for debug builds, the server's memory
/// budget becomes the measured [`calibration::budget`].
pub fn calibrated(path: &Path, tmp: &Path) -> PathBuf {
    if !cfg!(debug_assertions) {
        return path.to_path_buf();
    }
    let text = std::fs::read_to_string(path).expect("read scenario");
    let Some(line) = text
        .lines()
        .find(|l| l.trim_start().starts_with("memory_budget: 48MiB"))
    else {
        return path.to_path_buf();
    };
    let debug = text.replacen(line, &line.replacen("48MiB", calibration::budget(), 1), 1);
    let copy = tmp.join(path.file_name().expect("a file name"));
    std::fs::write(&copy, debug).expect("write calibrated scenario");
    copy
}

/// Asserts a run exited 0; on failure shows what it printed and every alarm with its evidence.
pub fn assert_passed(done: &Finished, run_dir: &Path) {
    assert_eq!(
        done.code(),
        Some(0),
        "{}\nalarms:\n{}",
        done.output(),
        alarms(run_dir)
    );
}

/// Every alarm of a run with its evidence, for assertion messages: when an alarm fires where it
/// should not, its RSS floors say why.
pub fn alarms(run_dir: &Path) -> String {
    journal(run_dir)
        .iter()
        .filter(|e| e.event.kind() == EventKind::Alarm)
        .map(|e| {
            format!(
                "t={}ms {}",
                e.t_ms,
                serde_json::to_string(&e.event).unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_failures_message_leads_with_the_failed_rows_the_pace_and_the_verdict() {
    use std::os::unix::process::ExitStatusExt;
    let done = Finished {
        status: ExitStatus::from_raw(256),
        stdout: "t=  4.3s  replace_collector: ...\n\
                 leak_alarm                     yes     fired on 2/2 stale agents\n\
                 stuck_volumes                  NO      stuck peak 8 of 21 volumes\n\
                 pace: kept (p99 lateness: harness_timer 2 ms; tolerance 100 ms)\n\
                 verdict: FAIL (1 of 12 expectations did not hold)\n"
            .into(),
        stderr: String::new(),
    };
    assert_eq!(
        done.verdict(),
        "stuck_volumes                  NO      stuck peak 8 of 21 volumes\n\
         pace: kept (p99 lateness: harness_timer 2 ms; tolerance 100 ms)\n\
         verdict: FAIL (1 of 12 expectations did not hold)"
    );
    assert!(done.output().starts_with("--- verdict ---\nstuck_volumes"));
}

/// Validates a junit.xml against the common JUnit schema (fixtures/junit/junit.xsd) with
/// xmllint (Debian's libxml2-utils; `scripts/test` installs it when missing).
pub fn assert_valid_junit(path: &std::path::Path) {
    let schema = repo().join("fixtures/junit/junit.xsd");
    let out = std::process::Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(&schema)
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!("xmllint is needed to validate junit.xml ({e}); apt-get install libxml2-utils")
        });
    assert!(
        out.status.success(),
        "{} does not validate against {}:\n{}",
        path.display(),
        schema.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}
