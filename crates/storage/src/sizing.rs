//! How big the cache may be: the arithmetic that keeps a storage server's memory flat and full.
//!
//! A storage server is two processes sharing one budget: this `storage` process and the reporting
//! `agent`. Like a real EBS server, storage treats every byte the agent does not use as cache:
//!
//! ```text
//!   budget ┌──────────────────────────────┐
//!          │ headroom (1 - fill_fraction) │  never used, so the server is not pushed to swap/OOM
//!   aim ── ├──────────────────────────────┤
//!          │ block cache  = target        │  whatever is left: shrinks as the agent grows
//!          ├──────────────────────────────┤
//!          │ storage's own base RSS       │  code, heap, stacks: own RSS minus the cache
//!          ├──────────────────────────────┤
//!          │ agent RSS                    │  read from /proc/<agent pid>/statm
//!        0 └──────────────────────────────┘
//! ```
//!
//! The consequence is the heart of the 2012 incident: the server's aggregate memory (agent +
//! storage) sits at `aim` whether the agent is healthy or leaking, so an alarm on the aggregate
//! has nothing to see; the leak shows up only as a shrinking cache, and then as slow I/O.

use std::fs::File;
use std::path::{Path, PathBuf};

use outage_lab_proto::procfs;

/// The fixed inputs of the cache-size arithmetic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Sizing {
    /// Memory budget of the whole server (storage + agent), bytes.
    pub(crate) budget: u64,
    /// Share of the budget the server aims to keep in use, in (0, 1].
    pub(crate) fill_fraction: f64,
    /// Cache granularity, bytes (non-zero).
    pub(crate) block_size: u64,
}

impl Sizing {
    /// The bytes the server aims to have in use: `budget * fill_fraction`.
    pub(crate) fn aim(&self) -> u64 {
        // f64 holds integers exactly up to 2^53 (8 PiB); the cast saturates, never wraps.
        (self.budget as f64 * self.fill_fraction) as u64
    }

    /// The cache size to move to, given the agent's RSS, this process's RSS and the cache size
    /// that RSS was measured with.
    ///
    /// `own_rss - cache_bytes` is storage's base (everything but the cache): it is measured, not
    /// configured, because it changes with load (connection buffers, heap growth), and any growth
    /// in it must come out of the cache or the server would creep over its aim. The result is
    /// clamped to `0..=budget` and rounded down to whole blocks, so the cache is never asked to
    /// hold a partial block.
    pub(crate) fn target(&self, agent_rss: u64, own_rss: u64, cache_bytes: u64) -> u64 {
        let own_base = own_rss.saturating_sub(cache_bytes);
        let free = self
            .aim()
            .saturating_sub(agent_rss)
            .saturating_sub(own_base)
            .min(self.budget);
        free - free % self.block_size.max(1)
    }
}

/// Reads what the resizer needs ten times a second: this process's resident memory and its
/// agent's, each from a `/proc/PID/statm` descriptor kept open between ticks. Opening the pid
/// file and both statm files on every tick was a sixth of a storage process's CPU.
///
/// The agent's descriptor is kept while its process lives; once it is reaped (a restart: the
/// harness stops the old agent before it writes the new one's pid) or a zombie, the pid file is
/// read again. An agent read as a tree (a program that may fork) is read afresh every tick.
#[derive(Debug)]
pub(crate) struct Meters {
    page_size: u64,
    own: Option<File>,
    pid_file: Option<PathBuf>,
    tree: bool,
    agent: Option<File>,
}

impl Meters {
    /// Meters for the agent whose pid is in `pid_file` (`tree`: with what it forked).
    pub(crate) fn new(pid_file: Option<PathBuf>, tree: bool) -> Self {
        Self {
            page_size: crate::mapping::page_size() as u64,
            own: None,
            pid_file,
            tree,
            agent: None,
        }
    }

    /// Resident bytes of this storage process.
    pub(crate) fn own_rss(&mut self) -> Option<u64> {
        if self.own.is_none() {
            self.own = File::open("/proc/self/statm").ok();
        }
        let pages = procfs::pread_resident_pages(self.own.as_ref()?)?;
        Some(pages * self.page_size)
    }

    /// Resident bytes of the agent, as [`agent_rss`] says, from a kept descriptor.
    pub(crate) fn agent_rss(&mut self) -> Option<u64> {
        if self.tree {
            return agent_rss(self.pid_file.as_deref(), true);
        }
        let live = |file: &File| procfs::pread_resident_pages(file).filter(|p| *p > 0);
        if let Some(pages) = self.agent.as_ref().and_then(live) {
            return Some(pages * self.page_size);
        }
        self.agent = None;
        let file = File::open(format!(
            "/proc/{}/statm",
            agent_pid(self.pid_file.as_deref()?)?
        ))
        .ok()?;
        let pages = live(&file)?;
        self.agent = Some(file);
        Some(pages * self.page_size)
    }
}

/// The pid written (in decimal) in `pid_file`; `None` for none, garbage or 0.
fn agent_pid(pid_file: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(pid_file).ok()?;
    text.trim().parse::<u32>().ok().filter(|pid| *pid != 0)
}

/// Resident bytes of the agent whose pid is written (in decimal) in `pid_file` (with every
/// process it forked, when `tree`: an agent the lab did not write may fork), or `None` when
/// there is no live agent: no pid file, one that cannot be read or parsed, a process that is gone, or a zombie
/// (its statm reads all zeros).
///
/// `None` is not "the agent uses nothing": during a restart the agent is absent for a moment,
/// and handing its share of the budget to the cache for that moment, then taking it back as the
/// new agent starts, is a multi-step climb and fall of the storage process's memory that a trend
/// detector can mistake for a leak on a busy machine. The caller keeps the last known value.
pub(crate) fn agent_rss(pid_file: Option<&Path>, tree: bool) -> Option<u64> {
    let pid = agent_pid(pid_file?)?;
    let page_size = crate::mapping::page_size() as u64;
    let rss = if tree {
        procfs::tree_resident_bytes(pid, page_size)
    } else {
        procfs::resident_bytes(&format!("/proc/{pid}/statm"), page_size)
    };
    rss.filter(|rss| *rss > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const KIB: u64 = 1 << 10;

    fn sizing() -> Sizing {
        Sizing {
            budget: 48 * MIB,
            fill_fraction: 0.9,
            block_size: 64 * KIB,
        }
    }

    #[test]
    fn the_cache_gets_what_the_aim_leaves_after_the_agent_and_storage_base() {
        // aim = 43.2 MiB; agent 4 MiB; own RSS 40 MiB of which 36 MiB is cache => base 4 MiB.
        let t = sizing().target(4 * MIB, 40 * MIB, 36 * MIB);
        let free = sizing().aim() - 8 * MIB;
        assert_eq!(t, free - free % (64 * KIB));
        assert_eq!(t % (64 * KIB), 0);
        assert!(t > 35 * MIB && t <= 35 * MIB + 256 * KIB, "{t}");
    }

    #[test]
    fn a_growing_agent_shrinks_the_cache_byte_for_byte() {
        let s = sizing();
        let small = s.target(4 * MIB, 40 * MIB, 36 * MIB);
        let big = s.target(20 * MIB, 40 * MIB, 36 * MIB);
        assert_eq!(small - big, 16 * MIB);
    }

    #[test]
    fn the_target_is_zero_when_the_agent_alone_exceeds_the_aim() {
        assert_eq!(sizing().target(60 * MIB, 4 * MIB, 0), 0);
    }

    #[test]
    fn the_target_never_exceeds_the_budget() {
        let s = Sizing {
            budget: 8 * MIB,
            fill_fraction: 1.0,
            block_size: 64 * KIB,
        };
        // Own RSS below the cache size (cannot happen, but must not underflow or overshoot).
        assert_eq!(s.target(0, 0, 4 * MIB), 8 * MIB);
    }

    #[test]
    fn the_target_is_rounded_down_to_whole_blocks() {
        let s = Sizing {
            budget: 10 * MIB + 1000,
            fill_fraction: 1.0,
            block_size: 64 * KIB,
        };
        assert_eq!(s.target(0, 0, 0), 10 * MIB);
    }

    #[test]
    fn this_process_reads_its_own_resident_memory() {
        assert!(Meters::new(None, false).own_rss().is_some_and(|b| b > 0));
    }

    #[test]
    fn a_missing_or_garbled_pid_file_means_no_live_agent() {
        assert_eq!(agent_rss(None, false), None);
        assert_eq!(
            agent_rss(Some(Path::new("/nonexistent/agent.pid")), false),
            None
        );
        let dir = std::env::temp_dir().join(format!("outage-lab-storage-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let file = dir.join("agent.pid");
        std::fs::write(&file, "not a pid").expect("write");
        assert_eq!(agent_rss(Some(&file), true), None);
        std::fs::write(&file, format!("{}\n", std::process::id())).expect("write");
        assert!(
            agent_rss(Some(&file), true).is_some_and(|b| b > 0),
            "own pid should have RSS"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn kept_descriptors_read_what_a_fresh_read_does_and_follow_the_pid_file_after_an_exit() {
        let dir = tempfile::tempdir().expect("tmp dir");
        let file = dir.path().join("agent.pid");
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        std::fs::write(&file, format!("{}\n", child.id())).expect("write");
        let mut meters = Meters::new(Some(file.clone()), false);
        let first = meters.agent_rss().expect("a live agent");
        assert!(meters.own_rss().is_some_and(|b| b > 0));
        child.kill().expect("kill");
        child.wait().expect("reap");
        assert_eq!(meters.agent_rss(), None, "a reaped agent reads as none");
        std::fs::write(&file, format!("{}\n", std::process::id())).expect("write");
        assert!(
            meters.agent_rss().is_some_and(|b| b > first),
            "the next agent in the pid file (this test process) is read"
        );
    }
}
