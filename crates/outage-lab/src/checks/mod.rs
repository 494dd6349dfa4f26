//! Checks: what must hold at the end of a run, judged against what really happened (the run
//! state folded from the journal), never against what the scenario asked for.
//!
//! Every check of a run is planned before the run starts ([`plan::planned`]), so `validate` can
//! say how many there will be and the verdict table has exactly those rows:
//! * `processes_stayed_up`, always: no process of the run died unasked;
//! * the checks of the timeline's steps (a `dns_update` brings `fault_took_effect`, a `kill`
//!   brings `kill_took_effect`): a fault that silently did nothing must never pass;
//! * one per field present in the scenario's `expect:` ([`expect`]), and
//!   `acknowledged_writes_read_back` whenever customers write.
//!
//! Three more rows appear only when the run itself went wrong ([`run`]): `run_completed`
//! (interrupted), `memory_contained` (stopped by the memory guard) and `no_process_left`.

pub mod customers;
pub mod expect;
pub mod plan;
pub mod run;

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

/// Bytes as `12.3MiB`.
pub fn mib(bytes: i128) -> String {
    format!("{:.1}MiB", bytes as f64 / (1024.0 * 1024.0))
}
