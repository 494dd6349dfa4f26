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

/// Bytes as `12.3MiB`.
pub fn mib(bytes: i128) -> String {
    format!("{:.1}MiB", bytes as f64 / (1024.0 * 1024.0))
}
