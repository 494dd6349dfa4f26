//! Why a run stops before the end of its timeline: the memory guard tripped (the run's
//! processes crossed the memory limit), or launcher hosts were lost with processes on them.
//! Both are read from the journal as it is written.

use outage_lab_ebs_events::{Event, JournalEntry};

use crate::containment::MemoryGuard;
use outage_lab_engine::supervisor::LOST_WITH_HOST;
use outage_lab_engine::terminal::say;

/// The reasons to stop a run early, as they come.
#[derive(Debug)]
pub struct Halt {
    /// Trips when the real memory of the run's processes crosses the limit.
    guard: MemoryGuard,
    /// Set by the guard: why the run was stopped early.
    pub memory_abort: Option<String>,
    /// Processes lost with their launcher hosts (a machine or container gone), in the order
    /// their streams ended.
    pub lost: Vec<String>,
    /// Why the run was stopped early for lost launcher hosts: which processes went with them.
    pub hosts_lost: Option<String>,
}

impl Halt {
    /// Nothing to stop for yet.
    pub fn new(guard: MemoryGuard) -> Self {
        Self {
            guard,
            memory_abort: None,
            lost: Vec::new(),
            hosts_lost: None,
        }
    }

    /// Whether the run was stopped before the end of its timeline.
    pub fn stopped_early(&self) -> bool {
        self.memory_abort.is_some() || self.hosts_lost.is_some()
    }

    /// Whether processes were lost with their hosts and the run has not yet given up for it.
    pub fn losing_hosts(&self) -> bool {
        !self.lost.is_empty() && self.hosts_lost.is_none()
    }

    /// Reads one journal entry: a memory sweep for the guard, a process lost with its host.
    pub fn observe(&mut self, entry: &JournalEntry) {
        match &entry.event {
            Event::RssSweep { samples } => {
                // The guard adds up every watchdog sweep and stops the run past the limit.
                let total = samples.iter().map(|s| s.rss_bytes).sum();
                if let (None, Some(reason)) = (&self.memory_abort, self.guard.check(total)) {
                    say(&format!(
                        "t={:>5.1}s  STOPPING: {reason}",
                        entry.t_ms as f64 / 1000.0
                    ));
                    self.memory_abort = Some(reason);
                }
            }
            Event::ProcessExited {
                name,
                status,
                expected: false,
                ..
            } if status == LOST_WITH_HOST => self.lost.push(name.clone()),
            _ => {}
        }
    }
}
