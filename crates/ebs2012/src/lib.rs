//! The AWS EBS outage of 22 October 2012 as an outage-lab incident: its scenario, fleet,
//! steps, fixes, checks, experiments, workshop and roles, behind [`EBS_2012`], the
//! `outage_lab_engine::incident::Incident` the program's registry holds.
//!
//! [`load_scenario`] is the loader `run` uses, for the fuzz targets (crates/fuzz-targets).

// `pub` marks each module's interface to the rest of the crate; the modules are private and
// only the incident and `load_scenario` are exported, so the workspace's unreachable_pub lint
// would only add noise here.
#![allow(unreachable_pub)]

mod check;
mod checks;
mod cli;
mod commands;
mod containment;
mod ctl;
mod experiment;
mod external_agent;
mod fixes;
mod fleet;
mod fleet_handle;
mod harness;
mod incident;
mod kinds;
mod launchers;
mod load;
mod names;
mod pace;
mod plan;
mod roles;
mod run_state;
mod scenario;
mod steps;
mod workshop;

pub use crate::commands::{Refusal, load_scenario};
pub use crate::incident::EBS_2012;

/// Exit codes: the engine's, one home for every incident.
pub(crate) use outage_lab_engine::exit;
