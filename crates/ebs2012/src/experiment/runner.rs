//! The experiment runner is the engine's (`outage_lab_engine::experiment`); here it runs the
//! 2012 incident's cells, whose numbers are [`Metrics`].

pub use outage_lab_engine::experiment::{Cell, Runner};

use super::metrics::Metrics;

/// How a cell of a 2012 experiment ended.
pub type Outcome = outage_lab_engine::experiment::Outcome<Metrics>;
/// What running a list of 2012 cells came to.
pub type Results = outage_lab_engine::experiment::Results<Metrics>;
