//! `processes_stayed_up`, checked on every run. The rows about the run itself that appear only
//! when it went wrong are the engine's (`outage_lab_engine::checks`).

use outage_lab_proto::report::ExpectationResult;

use crate::check::{CheckInput, result};

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
