//! End-to-end tests: the real `outage-lab` binary, real processes, real sockets, real DNS.
//!
//! Each test bounds every wait and cleans up on failure (see `support::Proc`). Scenario runs
//! take tens of seconds each; they are the proof that the causal chain happens for real.

#![allow(clippy::unwrap_used, unreachable_pub)]

mod support;

mod action;
mod agents;
mod api;
mod bad_scenarios;
mod ci_recipe;
mod cleanup;
mod code_map;
mod dns;
mod dynamodb;
mod experiments;
mod fixes;
mod hosts;
mod metrics;
mod overrides;
mod recovery;
mod runs;
mod safety;
mod scenarios;
mod steps;
mod views;
mod workshop;
