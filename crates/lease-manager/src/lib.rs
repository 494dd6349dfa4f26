//! EC2's lease manager (DWFM) in the DynamoDB 2025 incident, and the servers whose leases it
//! keeps.
//!
//! * [`manager`]: renewals queued and done by a fixed pool of workers, each a state check
//!   through the lab DNS and some work, renewed only if finished before the requester gave up.
//! * [`servers`]: servers that renew with a budget and retry when it runs out.
//! * [`launches`]: customers launching instances, each launch placed on a server whose lease
//!   is valid, or refused for insufficient capacity.
//! * [`ledger`]: the file its leases are written to, read back by a restarted manager.
//! * [`queue`]: the work queue, first in first out as it was, or with the fix
//!   `admission_control`.
//! * [`runbook`]: the fix `recovery_runbook`, the operators' way out done by the manager.
//! * [`throttle`]: the operators' throttle on incoming renewals, set through the manager's
//!   `PUT /control`.
//! * [`roles`]: the manager and the servers as the processes of a run run them.
//!
//! Nothing here decides that the manager collapses: it does when the servers ask faster than
//! the workers can answer within the budget, and then their retries keep it so.

pub mod launches;
pub mod ledger;
pub mod manager;
pub mod queue;
pub mod roles;
pub mod runbook;
pub mod servers;
pub mod throttle;

/// Calls `tell` once a second, the first a second from now, until `shutdown`: how every part
/// here tells its last second.
pub async fn every_second(shutdown: tokio_util::sync::CancellationToken, mut tell: impl FnMut()) {
    let mut second = tokio::time::interval(std::time::Duration::from_secs(1));
    second.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = second.tick() => tell(),
        }
    }
}
