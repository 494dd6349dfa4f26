//! The DNS automation of the DynamoDB 2025 incident: a plan store, a planner and the enactors
//! that race.
//!
//! * [`store`]: the plan store, an HTTP service; [`client::PlanStore`] is how the others reach it.
//! * [`planner`]: a new plan for every endpoint each interval, one generation above the last.
//! * [`enactor`]: picks up the newest plan, checks once that it is newer than the one last
//!   applied, writes it to every DNS server endpoint by endpoint through their admin APIs, then
//!   deletes old plans, and with each the records of an endpoint that still used it.
//! * [`fixes`]: the two fixes AWS named for the automation, each a mechanism of the enactor.
//! * [`repair`]: the operator's manual repair.
//! * [`control`]: a running planner's or enactor's admin API: enabled or not, and its stall.
//!
//! [`roles`] runs each part as a role (a process of a run, a task in tests): its API on its
//! own socket, a `ready` event, work until shutdown.

pub mod client;
pub mod control;
pub mod enactor;
pub mod fixes;
pub mod planner;
pub mod repair;
pub mod roles;
pub mod store;

pub use fixes::Fixes;
