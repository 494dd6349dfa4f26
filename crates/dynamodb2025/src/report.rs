//! `report.json` of a 2025 run: the scenario, the seed, the fixes on, every verdict row and the
//! verdict; and the table printed at the end.

use std::path::Path;

use outage_lab_engine::error::HarnessError;
use outage_lab_proto::report::ExpectationResult;
use serde::{Deserialize, Serialize};

use crate::scenario::Scenario;

/// What a run concluded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The incident.
    pub incident: String,
    /// The scenario's name.
    pub scenario: String,
    /// The seed it ran with.
    pub seed: u64,
    /// The fixes that were on.
    pub fixes: Vec<String>,
    /// `pass` when every expectation held, else `fail`.
    pub verdict: String,
    /// Every row of the verdict table.
    pub expectations: Vec<ExpectationResult>,
}

impl Report {
    /// The report of a run of `scenario` at `seed` judged as `rows`.
    pub fn new(scenario: &Scenario, seed: u64, rows: Vec<ExpectationResult>) -> Report {
        let passed = rows.iter().all(|r| r.passed);
        Report {
            incident: crate::scenario::NAME.to_owned(),
            scenario: scenario.name.clone(),
            seed,
            fixes: scenario
                .fixes
                .on()
                .iter()
                .map(|f| (*f).to_owned())
                .collect(),
            verdict: if passed { "pass" } else { "fail" }.to_owned(),
            expectations: rows,
        }
    }

    /// Whether every expectation held.
    pub fn passed(&self) -> bool {
        self.verdict == "pass"
    }

    /// The verdict table.
    pub fn table(&self) -> String {
        outage_lab_engine::checks::verdict_table(&self.expectations, &[])
    }
}

/// Writes `<run>/report.json`.
pub fn write(run_dir: &Path, report: &Report) -> Result<(), HarnessError> {
    outage_lab_engine::run_dir::write_json(&run_dir.join("report.json"), report)
}
