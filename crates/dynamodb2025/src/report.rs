//! `report.json` of a 2025 run (the scenario, the seed, the fixes on, every verdict row and the
//! verdict), `junit.xml`, the table printed at the end, and the Markdown summary for CI.

use std::path::Path;

use outage_lab_engine::error::HarnessError;
use outage_lab_proto::markup::{markdown_cell, markdown_rows, markdown_tally};
use outage_lab_proto::report::{ExpectationResult, LagReport};
use serde::{Deserialize, Serialize};

use crate::checks::Measures;
use crate::scenario::Scenario;

/// What a run came to, as the report keeps it.
#[derive(Debug)]
pub struct Judged {
    /// Every row of the verdict table.
    pub rows: Vec<ExpectationResult>,
    /// Its numbers.
    pub measures: Measures,
    /// How long it took, lab ms.
    pub wall_ms: u64,
    /// How late its scheduled work fired.
    pub lag: LagReport,
}

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
    /// How long the run took, lab ms from its start until everything had stopped.
    pub wall_ms: u64,
    /// How late the run's scheduled work fired, against the scenario's tolerance.
    pub lag: LagReport,
    /// What the run came to in numbers (what `compare` sets side by side).
    pub measures: Measures,
}

impl Report {
    /// The report of a run of `scenario` at `seed`: judged as `rows`, measured as `measures`;
    /// it took `wall_ms` and kept the pace `lag` says.
    pub fn new(scenario: &Scenario, seed: u64, judged: Judged) -> Report {
        let Judged {
            rows,
            measures,
            wall_ms,
            lag,
        } = judged;
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
            wall_ms,
            lag,
            measures,
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

    /// The run's summary for a CI job's page (`report RUN_DIR --format markdown`).
    pub fn markdown(&self) -> String {
        let fixes = match self.fixes.is_empty() {
            true => "no fix on".to_owned(),
            false => format!("fixes on: {}", self.fixes.join(", ")),
        };
        format!(
            "## {} (seed {}): {}\n\n{}; {}, {fixes}.\n\n{}\nThe run directory holds `journal.jsonl` (every event), `junit.xml` (one test case per expectation) and `report.json` (these rows, for machines).\n",
            markdown_cell(&self.scenario),
            self.seed,
            self.verdict.to_uppercase(),
            markdown_tally(&self.expectations),
            self.incident,
            markdown_rows(&self.expectations),
        )
    }

    /// `junit.xml` of the run.
    pub fn junit(&self) -> String {
        let properties = [
            ("incident", self.incident.clone()),
            ("seed", self.seed.to_string()),
            ("fixes", self.fixes.join(",")),
        ];
        outage_lab_engine::checks::junit(
            &self.scenario,
            &self.expectations,
            self.wall_ms,
            &properties,
        )
    }
}

/// Reads `<run>/report.json`; what is wrong with it, else.
pub fn read(run_dir: &Path) -> Result<Report, String> {
    let path = run_dir.join("report.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not a report: {e}", path.display()))
}

/// Writes `<run>/report.json` and `<run>/junit.xml`.
pub fn write(run_dir: &Path, report: &Report) -> Result<(), HarnessError> {
    outage_lab_engine::run_dir::write_json(&run_dir.join("report.json"), report)?;
    let path = run_dir.join("junit.xml");
    std::fs::write(&path, report.junit())
        .map_err(|e| HarnessError::io(format!("write {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rows: &[(&str, bool)]) -> Report {
        let scenario = crate::scenario::Scenario::parse(
            include_str!("../../../fixtures/scenarios/dynamodb-2025-10-20.yaml"),
            "fixture",
        )
        .expect("the fixture parses");
        let rows = (rows.iter())
            .map(|(name, passed)| outage_lab_engine::checks::result(name, *passed, "e|v".into()))
            .collect();
        {
            let judged = Judged {
                rows,
                measures: Measures::default(),
                wall_ms: 26_000,
                lag: LagReport::default(),
            };
            Report::new(&scenario, 7, judged)
        }
    }

    #[test]
    fn the_markdown_summary_heads_with_the_verdict_and_names_what_did_not_hold() {
        let failed = report(&[("fault_took_effect", true), ("automation_stuck", false)]);
        let text = failed.markdown();
        assert!(text.starts_with("## dynamodb-2025-10-20 (seed 7): FAIL\n\n1 of 2 expectations did not hold: automation_stuck; dynamodb-2025-10-20, no fix on."), "{text}");
        assert!(
            text.contains("| automation_stuck | **NO** | e\\|v |\n"),
            "{text}"
        );
    }

    #[test]
    fn junit_holds_a_case_per_row_and_the_run_as_properties() {
        let xml = report(&[("fault_took_effect", true), ("automation_stuck", false)]).junit();
        assert!(
            xml.contains("tests=\"2\" failures=\"1\" time=\"26.000\""),
            "{xml}"
        );
        assert!(
            xml.contains("<property name=\"seed\" value=\"7\"/>"),
            "{xml}"
        );
        assert_eq!(xml.matches("<testcase ").count(), 2, "{xml}");
    }
}
