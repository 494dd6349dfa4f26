//! How the `agent_memory_limit` fix's limit is enforced on this machine: a memory cgroup where
//! the harness can make one (cgroup v1 `memory.limit_in_bytes` or v2 `memory.max`, a child of
//! the harness's own cgroup, one per agent), else `RLIMIT_DATA` set in the child before exec. The fleet attaches each
//! agent to it; the fix's restarter asks it whether an exit was the limit's doing.

use std::path::{Path, PathBuf};

use outage_lab_proto::ByteSize;

use crate::names::ProcessName;

/// How the limit is enforced on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    /// A cgroup v1 memory controller directory for this run.
    CgroupV1(PathBuf),
    /// A cgroup v2 directory for this run.
    CgroupV2(PathBuf),
    /// `RLIMIT_DATA` in the child before exec.
    Rlimit,
}

/// The limit of one run's agents.
#[derive(Debug)]
pub struct Limiter {
    /// Bytes per agent.
    pub limit: u64,
    /// How it is enforced.
    pub mechanism: Mechanism,
    /// OOM kills already explained, per process (a cgroup's counter only grows).
    explained: std::collections::HashMap<ProcessName, u64>,
}

impl Limiter {
    /// Chooses the mechanism: a cgroup named `run` under the harness's own memory cgroup, else
    /// the rlimit.
    pub fn prepare(limit: ByteSize, run: &str) -> Self {
        let mechanism = make_cgroup(run).unwrap_or(Mechanism::Rlimit);
        Self {
            limit: limit.bytes(),
            mechanism,
            explained: std::collections::HashMap::new(),
        }
    }

    /// The run's control group directory, if the limit is a cgroup's.
    pub fn cgroup(&self) -> Option<&Path> {
        match &self.mechanism {
            Mechanism::CgroupV1(dir) | Mechanism::CgroupV2(dir) => Some(dir),
            Mechanism::Rlimit => None,
        }
    }

    /// One line for the journal: which mechanism, where.
    pub fn describe(&self) -> String {
        let limit = ByteSize(self.limit);
        match &self.mechanism {
            Mechanism::CgroupV1(dir) => format!(
                "memory cgroup v1 under {} (memory.limit_in_bytes = {limit} per agent)",
                dir.display()
            ),
            Mechanism::CgroupV2(dir) => format!(
                "memory cgroup v2 under {} (memory.max = {limit} per agent)",
                dir.display()
            ),
            Mechanism::Rlimit => {
                format!("RLIMIT_DATA = {limit} per agent (no memory cgroup could be made here)")
            }
        }
    }

    /// The rlimit to set in a child before exec, when that is the mechanism.
    pub fn rlimit(&self) -> Option<u64> {
        (self.mechanism == Mechanism::Rlimit).then_some(self.limit)
    }

    /// Puts a just-started agent under the limit (cgroups; the rlimit was set before exec).
    pub fn attach(&self, name: &ProcessName, pid: u32) -> std::io::Result<()> {
        let (dir, limit_file) = match &self.mechanism {
            Mechanism::CgroupV1(dir) => (dir.join(name.to_string()), "memory.limit_in_bytes"),
            Mechanism::CgroupV2(dir) => (dir.join(name.to_string()), "memory.max"),
            Mechanism::Rlimit => return Ok(()),
        };
        if !dir.is_dir() {
            std::fs::create_dir(&dir)?;
        }
        std::fs::write(dir.join(limit_file), self.limit.to_string())?;
        if matches!(self.mechanism, Mechanism::CgroupV2(_)) {
            // No swap to escape into.
            let _ = std::fs::write(dir.join("memory.swap.max"), "0");
        }
        std::fs::write(dir.join("cgroup.procs"), pid.to_string())
    }

    /// How many times the kernel killed a process of `name`'s cgroup for the limit.
    fn oom_kills(&self, name: &ProcessName) -> u64 {
        let (file, key) = match &self.mechanism {
            Mechanism::CgroupV1(dir) => (
                dir.join(name.to_string()).join("memory.oom_control"),
                "oom_kill",
            ),
            Mechanism::CgroupV2(dir) => {
                (dir.join(name.to_string()).join("memory.events"), "oom_kill")
            }
            Mechanism::Rlimit => return 0,
        };
        let text = std::fs::read_to_string(file).unwrap_or_default();
        (text.lines())
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Why `name`'s exit with `status` was this limit's doing, if it was: its cgroup counted a
    /// new OOM kill, or (under the rlimit) the allocator gave up and the process aborted.
    pub fn explains(&mut self, name: &ProcessName, status: &str) -> Option<String> {
        if self.mechanism == Mechanism::Rlimit {
            let aborted = status.contains(&format!("signal {}", libc::SIGABRT));
            return aborted.then(|| self.describe());
        }
        let kills = self.oom_kills(name);
        let seen = self.explained.entry(name.clone()).or_default();
        if kills <= *seen {
            return None;
        }
        *seen = kills;
        Some(format!(
            "{}; the kernel counted {kills} OOM kills in its cgroup",
            self.describe()
        ))
    }

    /// Removes the run's cgroups (their processes have exited by now).
    pub fn cleanup(&self) {
        let (Mechanism::CgroupV1(dir) | Mechanism::CgroupV2(dir)) = &self.mechanism else {
            return;
        };
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten().filter(|e| e.path().is_dir()) {
                let _ = std::fs::remove_dir(entry.path());
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
}

/// Makes `outage-lab-<run>` under this process's own memory cgroup, v2 first, then v1.
fn make_cgroup(run: &str) -> Option<Mechanism> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let root = Path::new("/sys/fs/cgroup");
    let name = format!("outage-lab-{run}");
    // v2: the unified hierarchy, `0::/path`, with the memory controller enabled for children.
    if let Some(path) = own.lines().find_map(|l| l.strip_prefix("0::")) {
        let parent = root.join(path.trim_start_matches('/'));
        let controllers = std::fs::read_to_string(parent.join("cgroup.subtree_control"));
        if controllers.is_ok_and(|c| c.split_whitespace().any(|c| c == "memory")) {
            let dir = parent.join(&name);
            if std::fs::create_dir_all(&dir).is_ok() {
                // The run's own cgroup holds no process, so its children may use `memory`.
                let _ = std::fs::write(dir.join("cgroup.subtree_control"), "+memory");
                return Some(Mechanism::CgroupV2(dir));
            }
        }
    }
    // v1: `N:memory:/path`.
    let path = own.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then_some(path)
    })?;
    let dir = root
        .join("memory")
        .join(path.trim_start_matches('/'))
        .join(&name);
    std::fs::create_dir_all(&dir).ok()?;
    Some(Mechanism::CgroupV1(dir))
}
