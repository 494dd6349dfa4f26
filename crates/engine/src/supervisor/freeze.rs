//! Freezing a run for real (a workshop stop): every process that acts on its own is stopped with
//! SIGSTOP and continued with SIGCONT together, and the lab clock holds meanwhile, so nothing
//! moves while the room talks. Which processes, and in what order, the incident says through
//! [`ProcessKey::freeze_rank`]; processes that only answer questions keep answering.
//!
//! The small print of freezing real processes, and how the engine handles its part:
//! - Order: clients are stopped before the servers they call and continued after them, so a
//!   server is running again before anyone can wait on it.
//! - In-flight timeouts: a request sent just before the stop "times out" on resume, although its
//!   peer never had a chance. Each role counts its SIGCONTs (`proto::freeze`) and drops an
//!   outcome that spans one.
//! - Stopping: a stopped process does not act on SIGTERM until continued, so every stop path
//!   sends SIGCONT after SIGTERM; SIGKILL (the parent-death signal, the ledger) kills a stopped
//!   process as it is.
//! - Only processes of this machine are frozen: a launcher host's are not signalled.

use std::collections::BTreeSet;

use super::{ProcessKey, Supervisor};

impl<K: ProcessKey> Supervisor<K> {
    /// Stops every process that acts on its own and holds the lab clock. Returns how many were
    /// stopped. Calling it again while frozen stops what started since (a restarted process).
    pub fn freeze(&self) -> usize {
        self.clock().hold();
        let mut stopped = 0;
        for rank in self.freeze_ranks() {
            stopped += self.signal_local(|k| k.freeze_rank() == Some(rank), libc::SIGSTOP);
        }
        stopped
    }

    /// Continues what [`Supervisor::freeze`] stopped, servers first, and lets the lab clock run.
    /// Returns how long the clock was held.
    pub fn thaw(&self) -> std::time::Duration {
        for rank in self.freeze_ranks().into_iter().rev() {
            self.signal_local(|k| k.freeze_rank() == Some(rank), libc::SIGCONT);
        }
        self.clock().release()
    }

    /// The ranks of the processes this supervisor holds, lowest first.
    fn freeze_ranks(&self) -> BTreeSet<u8> {
        self.lock()
            .keys()
            .filter_map(ProcessKey::freeze_rank)
            .collect()
    }
}
