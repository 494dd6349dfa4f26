//! The watchdog's hot path: each watched process's resident memory, straight from the kernel.
//!
//! Every sweep reads `/proc/PID/statm` of every watched process. Opening, reading and closing
//! two files per process (what sysinfo does: `stat` and `status`) costs about 25 µs each; a
//! descriptor kept open and read again with `pread` at offset 0 costs about a microsecond, and
//! the watchdog sweeps a thousand processes four times a second. So the reader keeps one
//! descriptor per process and reads it in place (`scripts/bench-sweep` measures both).
//!
//! The descriptor also answers "is it still the same process": it is tied to the process it was
//! opened for, so once that process is reaped, reads fail even if its pid has been reused. The
//! reader then drops it, and the next sweep opens the pid afresh with the new process's start
//! time, which [`crate::sweep::Sweeper`] sees as a different process. A zombie's statm reads all
//! zeros and counts as gone.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;

pub use outage_lab_proto::procfs::{parse_resident_pages, parse_start_time, pread_resident_pages};

/// What one sweep read about one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Resident set size, bytes.
    pub rss: u64,
    /// When the process started (clock ticks after boot, field 22 of `/proc/PID/stat`). A pid
    /// whose start time changes is a different process that reused the number.
    pub start_time: u64,
}

/// Reads resident memory of a set of pids, keeping one `/proc/PID/statm` descriptor open per
/// pid between calls.
#[derive(Debug)]
pub struct StatmReader {
    open: HashMap<u32, Open>,
    page_size: u64,
    /// Most descriptors to keep: the open-file limit less a reserve for sockets and logs.
    /// Processes beyond it are read the slow way (open, read, close) every sweep.
    max_open: usize,
}

/// Descriptors left for everything else the watchdog does.
const FD_RESERVE: u64 = 128;

#[derive(Debug)]
struct Open {
    statm: File,
    start_time: u64,
}

impl Default for StatmReader {
    fn default() -> Self {
        Self::new()
    }
}

impl StatmReader {
    /// A reader with nothing open yet.
    pub fn new() -> Self {
        // SAFETY: sysconf has no preconditions.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we pass.
        let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            limit.rlim_cur
        } else {
            1024
        };
        Self {
            open: HashMap::new(),
            page_size: u64::try_from(page_size)
                .ok()
                .filter(|&p| p > 0)
                .unwrap_or(4096),
            max_open: usize::try_from(soft.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX),
        }
    }

    /// Keeps at most `n` descriptors open (for tests of the fallback).
    pub fn with_max_open(mut self, n: usize) -> Self {
        self.max_open = n;
        self
    }

    /// The kernel's page size, in bytes.
    pub fn page_size(&self) -> u64 {
        self.page_size
    }

    /// Descriptors held right now.
    pub fn open_count(&self) -> usize {
        self.open.len()
    }

    /// Reads every pid in `pids`. A pid that is gone, or a zombie, is absent from the result.
    /// Descriptors of pids not asked for any more are closed.
    pub fn read(&mut self, pids: &[u32]) -> HashMap<u32, Reading> {
        if self.open.len() > pids.len() || self.open.keys().any(|p| !pids.contains(p)) {
            let wanted: HashSet<u32> = pids.iter().copied().collect();
            self.open.retain(|pid, _| wanted.contains(pid));
        }
        let mut readings = HashMap::with_capacity(pids.len());
        for &pid in pids {
            if !self.open.contains_key(&pid) {
                let Ok(o) = open(pid) else {
                    continue;
                };
                if self.open.len() >= self.max_open {
                    // Out of descriptors to keep: read this one now and let it close.
                    if let Some(pages) = pread_resident_pages(&o.statm).filter(|&p| p > 0) {
                        let rss = pages * self.page_size;
                        readings.insert(
                            pid,
                            Reading {
                                rss,
                                start_time: o.start_time,
                            },
                        );
                    }
                    continue;
                }
                self.open.insert(pid, o);
            }
            let Some(o) = self.open.get(&pid) else {
                continue;
            };
            match pread_resident_pages(&o.statm) {
                Some(pages) if pages > 0 => {
                    readings.insert(
                        pid,
                        Reading {
                            rss: pages * self.page_size,
                            start_time: o.start_time,
                        },
                    );
                }
                // Reaped (the read fails) or a zombie (all zeros): let it go; a reused pid is
                // opened afresh next time.
                _ => {
                    self.open.remove(&pid);
                }
            }
        }
        readings
    }
}

fn open(pid: u32) -> io::Result<Open> {
    // statm first: if the process is replaced between the two opens, the stat read below
    // belongs to the newer one and the (stale) statm descriptor fails on its first read.
    let statm = File::open(format!("/proc/{pid}/statm"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let start_time = parse_start_time(&stat)
        .ok_or_else(|| io::Error::other(format!("unreadable /proc/{pid}/stat")))?;
    Ok(Open { statm, start_time })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_child_reads_plausibly_and_its_exit_is_noticed() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let mut reader = StatmReader::new();
        let first = reader.read(&[pid]);
        let r = first.get(&pid).copied().expect("a live child is read");
        // Just after exec only a few pages are resident: at least one page, far below 64 MiB.
        assert!(r.rss >= 4096 && r.rss < 64 * 1024 * 1024, "rss {}", r.rss);
        let again = reader.read(&[pid]);
        assert_eq!(
            again.get(&pid).map(|r| r.start_time),
            Some(r.start_time),
            "same process, same start time"
        );
        assert_eq!(reader.open_count(), 1);

        child.kill().expect("kill");
        child.wait().expect("reap");
        assert!(reader.read(&[pid]).is_empty(), "a reaped process is gone");
        assert_eq!(reader.open_count(), 0);
    }

    #[test]
    fn beyond_the_descriptor_budget_processes_are_still_read() {
        let mut reader = StatmReader::new().with_max_open(1);
        let me = std::process::id();
        let parent = std::os::unix::process::parent_id();
        let readings = reader.read(&[me, parent]);
        assert_eq!(readings.len(), 2, "{readings:?}");
        assert_eq!(reader.open_count(), 1);
    }

    #[test]
    fn a_zombie_counts_as_gone_and_unwatched_pids_are_closed() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let mut reader = StatmReader::new();
        assert!(reader.read(&[pid, std::process::id()]).contains_key(&pid));
        assert_eq!(reader.open_count(), 2);
        child.kill().expect("kill");
        // Not reaped yet: a zombie. Wait until the kernel shows it as one.
        for _ in 0..100 {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat
                .rsplit_once(") ")
                .is_some_and(|(_, r)| r.starts_with('Z'))
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(!reader.read(&[pid]).contains_key(&pid), "a zombie is gone");
        assert_eq!(
            reader.open_count(),
            0,
            "the unwatched pid's descriptor is closed"
        );
        child.wait().expect("reap");
    }
}
