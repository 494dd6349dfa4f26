//! The rows of the verdict table about the run itself rather than about an incident: they
//! appear only when the run went wrong (`memory_contained`, `hosts_stayed_up`, `run_completed`,
//! `kept_pace` before the planned rows; `no_process_left` after them). And [`result`], how every row is
//! made.

use outage_lab_proto::report::ExpectationResult;

/// A row of the verdict table.
pub fn result(name: &str, passed: bool, detail: String) -> ExpectationResult {
    ExpectationResult {
        name: name.to_owned(),
        passed,
        detail,
    }
}

/// The verdict table printed at the end of a run: a row per expectation, then `notes` (one per
/// line), then the verdict in words.
pub fn verdict_table(rows: &[ExpectationResult], notes: &[String]) -> String {
    let width = rows
        .iter()
        .map(|e| e.name.len())
        .max()
        .unwrap_or(10)
        .max(11);
    let mut out = format!("{:<width$}  {:<6}  evidence\n", "expectation", "held");
    for e in rows {
        let held = if e.passed { "yes" } else { "NO" };
        out.push_str(&format!("{:<width$}  {held:<6}  {}\n", e.name, e.detail));
    }
    for note in notes {
        out.push_str(note);
        out.push('\n');
    }
    let failed = rows.iter().filter(|e| !e.passed).count();
    out.push_str(&match failed {
        0 => format!("verdict: PASS ({} expectations held)", rows.len()),
        _ => format!(
            "verdict: FAIL ({failed} of {} expectations did not hold)",
            rows.len()
        ),
    });
    out
}

/// `junit.xml` of a run: one test case per row of the verdict table, so CI systems show the
/// verdict natively; a row that did not hold is a `<failure>` carrying its evidence. `suite` is
/// the scenario's name, `properties` what else identifies the run (its seed, its fleet).
pub fn junit(
    suite: &str,
    rows: &[ExpectationResult],
    wall_ms: u64,
    properties: &[(&str, String)],
) -> String {
    use outage_lab_proto::markup::escape;
    let failures = rows.iter().filter(|e| !e.passed).count();
    let (n, t, suite) = (rows.len(), wall_ms as f64 / 1000.0, escape(suite));
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"outage-lab\" tests=\"{n}\" failures=\"{failures}\" time=\"{t:.3}\">\n  <testsuite name=\"{suite}\" tests=\"{n}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{t:.3}\">\n    <properties>\n"
    ));
    for (name, value) in properties {
        let (name, value) = (escape(name), escape(value));
        out.push_str(&format!(
            "      <property name=\"{name}\" value=\"{value}\"/>\n"
        ));
    }
    out.push_str("    </properties>\n");
    for e in rows {
        let (name, detail) = (escape(&e.name), escape(&e.detail));
        let body = if e.passed {
            format!("<system-out>{detail}</system-out>")
        } else {
            format!("<failure message=\"{detail}\" type=\"expectation\">{detail}</failure>")
        };
        out.push_str(&format!(
            "    <testcase name=\"{name}\" classname=\"outage-lab.{suite}\" time=\"0\">\n      {body}\n    </testcase>\n"
        ));
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// How the run itself went, as the harness saw it.
#[derive(Debug, Default)]
pub struct RunFacts {
    /// The signal that cut the run short.
    pub interrupted: Option<&'static str>,
    /// Why the memory guard stopped the run.
    pub memory_abort: Option<String>,
    /// Which processes were lost with their launcher hosts, when that stopped the run.
    pub hosts_lost: Option<String>,
    /// Processes still running after every one was stopped, as `name (pid)`.
    pub leftovers: Vec<String>,
    /// Why the run's timing is not evidence, when its lateness went over the tolerance
    /// ([`crate::lag::disturbance`]).
    pub disturbed: Option<String>,
}

/// The rows that go before the planned ones: the run did not complete.
pub fn before(facts: &RunFacts, end_ms: u64) -> Vec<ExpectationResult> {
    let mut out = Vec::new();
    if let Some(reason) = &facts.memory_abort {
        out.push(result("memory_contained", false, reason.clone()));
    }
    if let Some(reason) = &facts.hosts_lost {
        out.push(result("hosts_stayed_up", false, reason.clone()));
    }
    if let Some(sig) = facts.interrupted {
        out.push(result(
            "run_completed",
            false,
            format!("interrupted by {sig} at {end_ms}ms; the timeline did not finish"),
        ));
    }
    // A run that lost hosts waited on the dead ones (a sweep asks every launcher): its lateness
    // is the loss's, already its own row, not the machine's.
    if let Some(reason) = &facts.disturbed
        && facts.hosts_lost.is_none()
    {
        out.push(result("kept_pace", false, reason.clone()));
    }
    out
}

/// The rows that go after the planned ones: something outlived the run.
pub fn after(facts: &RunFacts) -> Vec<ExpectationResult> {
    if facts.leftovers.is_empty() {
        return Vec::new();
    }
    vec![result(
        "no_process_left",
        false,
        format!("still running after stop: {}", facts.leftovers.join(", ")),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(rows: &[ExpectationResult]) -> Vec<&str> {
        rows.iter().map(|r| r.name.as_str()).collect()
    }

    #[test]
    fn the_verdict_table_says_which_rows_held_and_counts_those_that_did_not() {
        let rows = [
            result("fault_took_effect", true, "a".into()),
            result("x", false, "b".into()),
        ];
        let table = verdict_table(&rows, &["pace: kept".into()]);
        assert!(table.contains("fault_took_effect  yes     a"), "{table}");
        assert!(table.contains("x                  NO      b"), "{table}");
        assert!(table.ends_with("pace: kept\nverdict: FAIL (1 of 2 expectations did not hold)"));
        let all = verdict_table(&rows[..1], &[]);
        assert!(
            all.ends_with("verdict: PASS (1 expectations held)"),
            "{all}"
        );
    }

    #[test]
    fn a_run_that_went_right_has_no_run_level_row() {
        assert!(before(&RunFacts::default(), 0).is_empty());
        assert!(after(&RunFacts::default()).is_empty());
    }

    #[test]
    fn a_disturbed_run_fails_kept_pace_unless_it_lost_hosts_which_says_why_it_was_late() {
        let disturbed = RunFacts {
            disturbed: Some("late".into()),
            ..RunFacts::default()
        };
        assert_eq!(names(&before(&disturbed, 0)), ["kept_pace"]);
        let lost = RunFacts {
            hosts_lost: Some("gone".into()),
            ..disturbed
        };
        assert_eq!(names(&before(&lost, 0)), ["hosts_stayed_up"]);
    }
}
