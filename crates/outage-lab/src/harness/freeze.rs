//! Freezing a run for real (`outage-lab workshop`): every process that acts on its own is stopped
//! with SIGSTOP and continued with SIGCONT together, and the lab clock holds meanwhile, so nothing
//! leaks, probes or fails over while the room talks.
//!
//! Which processes: agents (the lab's or any program's, whole process group), storage servers,
//! control and the watchdog. The DNS servers and collectors only answer questions and change
//! nothing on their own, so they keep answering: `dig` and `curl` work at a stop. Nothing they do
//! then moves a number the alarms read.
//!
//! The small print of freezing real processes, and how each part is handled:
//! - Order: clients are stopped before the servers they call and continued after them, so a
//!   server is running again before anyone can wait on it.
//! - In-flight timeouts: a request sent just before the stop "times out" on resume, although its
//!   peer never had a chance. Each role counts its SIGCONTs (`proto::freeze`) and drops an
//!   outcome that spans one: no failed report (no leak), no failed probe, on account of a freeze.
//! - The watchdog stamps samples with active time, so a freeze is no gap without growth in the
//!   leak detector's windows; it takes no sample while stopped.
//! - The customers' load and API automation (the harness's own tasks) send nothing while
//!   frozen, and the fixes that act after a delay (`leak_alarm_action`'s reaction time,
//!   `dns_verification`'s rounds) count only time the run ran.
//! - Stopping: a stopped process does not act on SIGTERM until continued, so every stop path
//!   sends SIGCONT after SIGTERM; SIGKILL (the parent-death signal, the ledger) kills a stopped
//!   process as it is.

use outage_lab_proto::Role;

use crate::supervisor::Supervisor;

/// Roles stopped at a freeze, clients first: stopped in this order, continued in reverse.
const FREEZE_ORDER: [Role; 4] = [Role::Agent, Role::Control, Role::Watchdog, Role::Storage];

impl Supervisor {
    /// Stops every process that acts on its own and holds the lab clock. Returns how many were
    /// stopped. Calling it again while frozen stops what started since (a restarted agent).
    pub fn freeze(&self) -> usize {
        self.clock().hold();
        let mut stopped = 0;
        for role in FREEZE_ORDER {
            stopped += self.signal_local(|n| n.role() == role, libc::SIGSTOP);
        }
        stopped
    }

    /// Continues what [`Supervisor::freeze`] stopped, servers first, and lets the lab clock run.
    /// Returns how long the clock was held.
    pub fn thaw(&self) -> std::time::Duration {
        for role in FREEZE_ORDER.iter().rev() {
            self.signal_local(|n| n.role() == *role, libc::SIGCONT);
        }
        self.clock().release()
    }
}
