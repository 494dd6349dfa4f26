//! One supervised process as the supervisor keeps it, and how it is signalled and stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;

use super::launcher::RemoteSignal;

pub(super) struct Proc {
    pub(super) pid: u32,
    /// Set before the harness signals it, so its exit is reported as expected.
    pub(super) stopping: Arc<AtomicBool>,
    /// Becomes true when the child has been reaped.
    pub(super) exited: watch::Receiver<bool>,
    /// For a process on a launcher host: where to send its signals. `None`: our own child.
    pub(super) remote: Option<RemoteSignal>,
    /// A program in its own process group: signals go to the whole group.
    pub(super) group: bool,
}

/// Sends `sig` to the process group `pgid` (a program started by [`Supervisor::spawn_program`]).
pub(super) fn signal_group(pgid: u32, sig: libc::c_int) {
    if let Ok(pgid) = libc::pid_t::try_from(pgid) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

/// What the supervisor keeps to stop a process: the flag saying its exit is expected, and
/// whether it has been reaped.
pub(super) type Watch = (Arc<AtomicBool>, watch::Receiver<bool>);

impl Proc {
    /// Sends `sig` to our own child (a program's whole group).
    pub(super) fn signal_here(&self, sig: libc::c_int) {
        if self.group {
            signal_group(self.pid, sig);
        } else {
            outage_lab_host::send_signal(self.pid, sig);
        }
    }

    /// Sends `sig`: to our own child directly, to a remote one through its launcher (which only
    /// signals a child it has not reaped). A launcher that cannot be reached is logged; the
    /// caller's SIGKILL fallback and timeouts still bound the stop.
    async fn signal(&self, sig: libc::c_int) {
        match &self.remote {
            None => self.signal_here(sig),
            Some(remote) => {
                let signal = if sig == libc::SIGKILL {
                    outage_lab_host::Signal::Kill
                } else {
                    outage_lab_host::Signal::Term
                };
                let sent = remote
                    .client
                    .post(&remote.url)
                    .timeout(Duration::from_secs(2))
                    .json(&outage_lab_host::SignalRequest { signal })
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() || r.status() == 404 => {}
                    Ok(r) => {
                        tracing::warn!(url = %remote.url, status = %r.status(), "launcher refused a signal")
                    }
                    Err(e) => {
                        tracing::warn!(url = %remote.url, "could not reach the launcher: {e}")
                    }
                }
            }
        }
    }
}

pub(super) async fn stop_procs(procs: Vec<Proc>, grace: Duration) {
    let mut waits = tokio::task::JoinSet::new();
    for proc in procs {
        waits.spawn(stop_proc(proc, grace));
    }
    while waits.join_next().await.is_some() {}
}

/// SIGTERM, up to `grace` to exit, then SIGKILL; a zero grace is SIGKILL at once (a crash).
async fn stop_proc(mut proc: Proc, grace: Duration) {
    if *proc.exited.borrow() {
        return;
    }
    proc.stopping.store(true, Ordering::SeqCst);
    let exited = if grace.is_zero() {
        Err(())
    } else {
        proc.signal(libc::SIGTERM).await;
        if proc.remote.is_none() {
            // A frozen process (a workshop stop) acts on SIGTERM only once continued.
            proc.signal(libc::SIGCONT).await;
        }
        tokio::time::timeout(grace, proc.exited.wait_for(|done| *done))
            .await
            .map(|_| ())
            .map_err(|_| ())
    };
    if exited.is_err() {
        if !grace.is_zero() {
            tracing::warn!(
                pid = proc.pid,
                "did not stop within {grace:?} of SIGTERM; sending SIGKILL"
            );
        }
        proc.signal(libc::SIGKILL).await;
        let _ =
            tokio::time::timeout(Duration::from_secs(5), proc.exited.wait_for(|done| *done)).await;
    }
}
