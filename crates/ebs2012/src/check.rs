//! One check: its name in the verdict table, how it is judged, and everything it may read
//! ([`CheckInput`]). The checks of a run ([`crate::checks`]) and the checks a timeline step
//! brings ([`crate::steps`]) are both made of these, so a step's checks need nothing of the
//! verdict's planning.

use outage_lab_proto::report::{CustomersReport, ExpectationResult};

use crate::load::{LoadError, WriteCheck};
use crate::plan::Plan;
use crate::run_state::RunState;

/// Everything a check may read.
#[derive(Debug)]
pub struct CheckInput<'a> {
    /// The address plan (who is stale).
    pub plan: &'a Plan,
    /// What happened.
    pub state: &'a RunState,
    /// When the timeline ended (ms since run start).
    pub end_ms: u64,
    /// Every acknowledged write read back at the end; `None` when that did not happen.
    pub writes: Option<&'a Result<WriteCheck, LoadError>>,
    /// The customer accounts' API calls and recoveries, when the scenario has accounts.
    pub customers: Option<&'a CustomersReport>,
    /// Whether the agents are a program the lab did not write (`agent.command`): they tell
    /// nothing themselves, so what they did is judged from DNS answers and collector counts.
    pub external_agent: bool,
}

/// One planned check: its name in the verdict table, and how it is judged.
pub struct Check<'a> {
    /// The row's name.
    pub name: &'static str,
    judge: Box<dyn Fn(&CheckInput<'_>) -> ExpectationResult + 'a>,
}

impl std::fmt::Debug for Check<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}

impl<'a> Check<'a> {
    /// A check named `name` that `judge` decides.
    pub fn new(
        name: &'static str,
        judge: impl Fn(&CheckInput<'_>) -> ExpectationResult + 'a,
    ) -> Self {
        Self {
            name,
            judge: Box::new(judge),
        }
    }

    /// Judges the run.
    pub fn judge(&self, input: &CheckInput<'_>) -> ExpectationResult {
        (self.judge)(input)
    }
}

pub use outage_lab_engine::checks::result;

/// The first `n` problems, and how many more there were.
pub fn first_few(problems: &[String], n: usize) -> String {
    let more = problems.len().saturating_sub(n);
    let mut text = problems[..problems.len().min(n)].join("; ");
    if more > 0 {
        text.push_str(&format!("; and {more} more"));
    }
    text
}
