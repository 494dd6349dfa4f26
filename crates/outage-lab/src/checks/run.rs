//! Checks of the run itself rather than of the scenario: `processes_stayed_up` always, and the
//! three that appear only when the run went wrong.

use outage_lab_proto::report::ExpectationResult;

use super::{CheckInput, result};

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
}

/// Always checked: no process of the run exited without being asked to.
pub fn processes_stayed_up(input: &CheckInput<'_>) -> ExpectationResult {
    let crashes = &input.state.crashes;
    let detail = if crashes.is_empty() {
        "no process of the run exited unasked".to_owned()
    } else {
        (crashes.iter())
            .map(|c| format!("{} exited at {}ms ({})", c.name, c.t_ms, c.status))
            .collect::<Vec<_>>()
            .join("; ")
    };
    result("processes_stayed_up", crashes.is_empty(), detail)
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
