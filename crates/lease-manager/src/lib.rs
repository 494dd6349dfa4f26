//! EC2's lease manager (DWFM) in the DynamoDB 2025 incident, and the servers whose leases it
//! keeps.
//!
//! * [`manager`]: renewals queued and done by a fixed pool of workers, each a state check
//!   through the lab DNS and some work, renewed only if finished before the requester gave up.
//! * [`servers`]: servers that renew with a budget and retry when it runs out.
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

pub mod ledger;
pub mod manager;
pub mod queue;
pub mod roles;
pub mod runbook;
pub mod servers;
pub mod throttle;
