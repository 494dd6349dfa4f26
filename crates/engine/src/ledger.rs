//! The ledger: what a run started, on disk, so a later run can clean up after a crashed one.
//!
//! Children die with the harness through `PR_SET_PDEATHSIG`, so orphans should never exist; the
//! ledger is the second line of defence for the cases that signal cannot cover (a child stopped
//! with SIGSTOP when the harness died, a kernel that drops the signal). Each running harness
//! keeps `ledger-<pid>-<start>.jsonl` in the state directory: one line per process it started,
//! with the process's start time. At the start of every run, ledgers whose harness is gone are
//! read, and a listed process is killed only if its identity is proven: the same pid, the same
//! kernel start time, and a command line naming that run's directory (or, for an agent the lab
//! did not write, a working directory inside it). Anything else is left alone; a recycled pid is
//! never hit.
//!
//! A program the lab did not write runs in a process group and a PID namespace of its own
//! (`supervisor::isolation`), so what it forks dies with it when the harness dies. Its line
//! says so (`group`), and every member of that group working inside the run's directory is
//! reaped too, even once the program itself is gone: the second line of defence again.
//!
//! A run may also make kernel objects that outlive its processes: a control group directory
//! (for a memory limit) stays, empty, when the harness is killed. The ledger lists each
//! (`cgroup`), and the reaper removes it once the processes are gone; the kernel refuses to
//! remove a control group that still holds a process, so nothing in use is touched.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One line of a ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    /// Process id.
    pid: u32,
    /// Its start time in clock ticks since boot (`/proc/PID/stat` field 22).
    start: u64,
    /// The run directory, which every process of the run names on its command line.
    run_dir: String,
    /// Process name in the run (`harness` for the first line).
    name: String,
    /// It leads a process group of its own (an external agent).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    group: bool,
}

/// A control group directory a run made: removed, with its child groups, once the run is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CgroupLine {
    /// Its path, under `/sys/fs/cgroup`.
    cgroup: PathBuf,
}

/// A line of a ledger: a process, or a control group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
enum Entry {
    Process(Line),
    Cgroup(CgroupLine),
}

/// Where every control group lives; a ledger line naming anything else is not acted on.
const CGROUP_ROOT: &str = "/sys/fs/cgroup/";

/// The open ledger of this run.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    file: File,
    run_dir: String,
}

/// Where ledgers live: `$OUTAGE_LAB_STATE_DIR`, else `$XDG_RUNTIME_DIR/outage-lab`, else
/// `/tmp/outage-lab-<uid>`.
pub fn state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OUTAGE_LAB_STATE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
        return PathBuf::from(dir).join("outage-lab");
    }
    // SAFETY: getuid(2) cannot fail and has no preconditions.
    let uid = unsafe { libc::getuid() };
    PathBuf::from(format!("/tmp/outage-lab-{uid}"))
}

/// A process's start time (clock ticks since boot), or `None` if it does not exist.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    outage_lab_proto::procfs::parse_start_time(&stat)
}

impl Ledger {
    /// Creates this harness's ledger for `run_dir`.
    pub fn create(run_dir: &Path) -> std::io::Result<Self> {
        let dir = state_dir();
        std::fs::create_dir_all(&dir)?;
        let me = std::process::id();
        let start = start_time(me).unwrap_or(0);
        let path = dir.join(format!("ledger-{me}-{start}.jsonl"));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let run_dir = std::path::absolute(run_dir)
            .unwrap_or_else(|_| run_dir.to_owned())
            .display()
            .to_string();
        let mut ledger = Self {
            path,
            file,
            run_dir,
        };
        ledger.append(me, start, "harness", false)?;
        Ok(ledger)
    }

    /// Records a process this run started; `group`: it leads a process group of its own.
    pub fn record(&mut self, pid: u32, name: &str, group: bool) -> std::io::Result<()> {
        let start = start_time(pid).unwrap_or(0);
        self.append(pid, start, name, group)
    }

    /// Records a control group directory this run made, for the reaper to remove should the
    /// run die without removing it.
    pub fn record_cgroup(&mut self, dir: &Path) -> std::io::Result<()> {
        self.write(&Entry::Cgroup(CgroupLine {
            cgroup: dir.to_owned(),
        }))
    }

    fn append(&mut self, pid: u32, start: u64, name: &str, group: bool) -> std::io::Result<()> {
        self.write(&Entry::Process(Line {
            pid,
            start,
            run_dir: self.run_dir.clone(),
            name: name.to_owned(),
            group,
        }))
    }

    fn write(&mut self, entry: &Entry) -> std::io::Result<()> {
        let json = serde_json::to_string(entry).map_err(std::io::Error::other)?;
        writeln!(self.file, "{json}")?;
        self.file.flush()
    }

    /// The run ended and every process was reaped: the ledger is no longer needed.
    pub fn close(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reaps what harnesses that are gone left: their processes, then their control groups.
/// Returns one line per process killed or control group removed.
pub fn reap_orphans() -> Vec<String> {
    let mut reaped = Vec::new();
    let Ok(entries) = std::fs::read_dir(state_dir()) else {
        return reaped;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_ledger = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("ledger-") && n.ends_with(".jsonl"));
        if !is_ledger {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let entries: Vec<Entry> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let Some(Entry::Process(harness)) = entries.first() else {
            let _ = std::fs::remove_file(&path);
            continue;
        };
        if is_alive(harness.pid, harness.start) {
            continue; // A run in progress: not ours to touch.
        }
        reaped.extend(reap_ledger(harness, &entries[1..]));
        let _ = std::fs::remove_file(&path);
    }
    reaped
}

/// What one gone harness's ledger lists: its processes first, so its control groups are empty.
fn reap_ledger(harness: &Line, entries: &[Entry]) -> Vec<String> {
    let mut reaped = Vec::new();
    for line in entries.iter().filter_map(|e| match e {
        Entry::Process(line) => Some(line),
        Entry::Cgroup(_) => None,
    }) {
        if is_alive(line.pid, line.start) && belongs_to_run(line.pid, &line.run_dir) {
            kill(line.pid);
            reaped.push(format!(
                "{} (pid {}) of the crashed run in {} (harness pid {})",
                line.name, line.pid, line.run_dir, harness.pid
            ));
        }
        if line.group {
            reaped.extend(reap_group(line, harness.pid));
        }
    }
    for CgroupLine { cgroup } in entries.iter().filter_map(|e| match e {
        Entry::Cgroup(c) => Some(c),
        Entry::Process(_) => None,
    }) {
        if remove_cgroup(cgroup) {
            reaped.push(format!(
                "the control group {} of the crashed run in {} (harness pid {})",
                cgroup.display(),
                harness.run_dir,
                harness.pid
            ));
        }
    }
    reaped
}

/// Removes a control group directory and its child groups, deepest first; whether it existed
/// and is gone now. The kernel refuses (`EBUSY`) while a group holds a process: a killed
/// process may take a moment to leave, so each removal is tried for up to a second.
fn remove_cgroup(dir: &Path) -> bool {
    if !dir.starts_with(CGROUP_ROOT) || !dir.is_dir() {
        return false;
    }
    if let Ok(children) = std::fs::read_dir(dir) {
        for child in children.flatten().filter(|c| c.path().is_dir()) {
            remove_cgroup(&child.path());
        }
    }
    for _ in 0..20 {
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

/// The members of `line`'s process group that work inside its run: what an external agent
/// forked, which outlives the agent when the harness dies.
fn reap_group(line: &Line, harness: u32) -> Vec<String> {
    let members = outage_lab_proto::procfs::group_members(line.pid);
    (members.into_iter())
        .filter(|&pid| pid != line.pid && belongs_to_run(pid, &line.run_dir))
        .map(|pid| {
            kill(pid);
            format!(
                "a process (pid {pid}) forked by {} of the crashed run in {} (harness pid {harness})",
                line.name, line.run_dir
            )
        })
        .collect()
}

/// SIGKILLs `pid`, whose identity the caller proved.
fn kill(pid: u32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill(2) has no memory-safety preconditions; the caller proved the identity.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

fn is_alive(pid: u32, start: u64) -> bool {
    start_time(pid).is_some_and(|s| s == start)
}

/// Whether `pid` is a process of the run in `run_dir`: its command line names the directory
/// (every role does), or it works inside it (an external agent starts in `<run>/agents/<id>`).
fn belongs_to_run(pid: u32, run_dir: &str) -> bool {
    let names = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(run_dir))
        .unwrap_or(false);
    let works_inside =
        std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(run_dir));
    names || works_inside
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_time_of_this_process_is_readable_and_stable() {
        let me = std::process::id();
        let a = start_time(me).expect("own stat");
        assert_eq!(start_time(me), Some(a));
        assert!(start_time(u32::MAX).is_none());
    }

    #[test]
    fn a_ledger_reads_its_process_lines_and_its_control_group_lines() {
        let process = r#"{"pid":7,"start":9,"run_dir":"/r","name":"harness"}"#;
        let cgroup = r#"{"cgroup":"/sys/fs/cgroup/memory/outage-lab-x"}"#;
        let parsed: Vec<Entry> = [process, cgroup]
            .iter()
            .map(|l| serde_json::from_str(l).expect(l))
            .collect();
        assert!(matches!(&parsed[0], Entry::Process(l) if l.pid == 7 && !l.group));
        assert!(matches!(&parsed[1], Entry::Cgroup(c) if c.cgroup.ends_with("outage-lab-x")));
        let written = serde_json::to_string(&parsed[1]).expect("json");
        assert_eq!(written, cgroup);
    }

    #[test]
    fn a_directory_outside_the_cgroup_tree_is_never_removed() {
        let tmp = std::env::temp_dir().join(format!("ledger-test-{}", std::process::id()));
        std::fs::create_dir_all(tmp.join("child")).expect("mkdir");
        assert!(!remove_cgroup(&tmp));
        assert!(tmp.join("child").is_dir());
        std::fs::remove_dir_all(&tmp).expect("clean up");
    }
}
