//! The summary of a run for a CI job's page: GitHub-flavoured Markdown built from `report.json`
//! alone (`outage-lab report RUN_DIR --format markdown`; the GitHub Action writes it to the job
//! summary). [`render`] is pure: the same report gives the same text.

use std::fmt::Write;

use outage_lab_proto::markup::{markdown_cell, markdown_rows, markdown_tally};
use outage_lab_proto::report::Report;

use crate::page::verdict_word;

/// The files of a run directory a reader of the summary opens next, and what each is for.
const FILES: &str = "The run directory holds `report.html` (the plots), `junit.xml` (one test \
                     case per expectation) and `report.json` (these numbers, for machines).";

/// The summary: a heading with the scenario, the seed and the verdict, a line saying which
/// expectations did not hold, the verdict table, and the run directory's files.
pub fn render(report: &Report) -> String {
    let mut out = format!(
        "## {} (seed {}): {}\n\n{}\n\n{}",
        markdown_cell(&report.scenario),
        report.seed,
        verdict_word(report.verdict),
        tally(report),
        markdown_rows(&report.expectations),
    );
    if let Some(lag) = &report.lag {
        let _ = writeln!(out, "\n{}", markdown_cell(&lag.summary()));
    }
    let _ = writeln!(out, "\n{FILES}");
    out
}

/// `Every expectation held (5 of 5); ...` or `2 of 5 expectations did not hold: a, b; ...`,
/// then the fleet's size and the run's wall time.
fn tally(report: &Report) -> String {
    format!(
        "{}; {} storage servers, {:.1} s.",
        markdown_tally(&report.expectations),
        report.servers.len(),
        report.wall_ms as f64 / 1000.0
    )
}

#[cfg(test)]
mod tests {
    use outage_lab_proto::report::{ExpectationResult, Report, Verdict};

    use super::render;

    /// A report with these (name, held, evidence) rows; the verdict follows from them.
    fn report(rows: &[(&str, bool, &str)]) -> Report {
        let row = |&(name, passed, detail): &(&str, bool, &str)| ExpectationResult {
            name: name.into(),
            passed,
            detail: detail.into(),
        };
        let passed = rows.iter().all(|r| r.1);
        Report {
            scenario: "storage-server-dies".into(),
            seed: 7,
            verdict: if passed { Verdict::Pass } else { Verdict::Fail },
            wall_ms: 16_300,
            servers: Vec::new(),
            expectations: rows.iter().map(row).collect(),
            volumes: Default::default(),
            load: Default::default(),
            harness: Default::default(),
            fixes: Vec::new(),
            customers: None,
            lag: None,
        }
    }

    #[test]
    fn a_passing_run_is_headed_pass_with_its_seed_and_every_row_in_the_table() {
        let text = render(&report(&[
            ("stuck_volumes", true, "none stuck"),
            ("leak_alarm", true, "fired on nothing"),
        ]));
        assert!(
            text.starts_with("## storage-server-dies (seed 7): PASS\n\nEvery expectation held (2 of 2); 0 storage servers, 16.3 s.\n"),
            "{text}"
        );
        assert!(
            text.contains("| expectation | held | evidence |\n| --- | --- | --- |\n| stuck_volumes | yes | none stuck |\n| leak_alarm | yes | fired on nothing |\n"),
            "{text}"
        );
        for file in ["`report.html`", "`junit.xml`", "`report.json`"] {
            assert!(text.contains(file), "{file} in {text}");
        }
    }

    #[test]
    fn a_failing_run_is_headed_fail_and_names_the_row_that_did_not_hold() {
        let text = render(&report(&[
            ("stuck_volumes", true, "none stuck"),
            ("stale_agents_grow_at_most", false, "s002 grew 14.8 MiB"),
        ]));
        assert!(
            text.starts_with("## storage-server-dies (seed 7): FAIL\n"),
            "{text}"
        );
        assert!(
            text.contains("1 of 2 expectations did not hold: stale_agents_grow_at_most;"),
            "{text}"
        );
        assert!(
            text.contains("| stale_agents_grow_at_most | **NO** | s002 grew 14.8 MiB |\n"),
            "{text}"
        );
    }

    #[test]
    fn a_pipe_in_evidence_is_escaped_so_the_row_keeps_three_cells() {
        let text = render(&report(&[("fault_took_effect", true, "a|b <c>\nd")]));
        assert!(
            text.contains("| fault_took_effect | yes | a\\|b \\<c\\> d |\n"),
            "{text}"
        );
    }
}
