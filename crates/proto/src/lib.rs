//! Types shared by every outage-lab process: humane units, the event protocol that role processes
//! speak on stdout, the run journal, and the report schema.
//!
//! The harness and the role daemons are separate processes of one binary. They agree on exactly
//! two things, both defined here:
//!
//! * **Events.** A role writes one JSON object per line on stdout (its incident's event enum,
//!   made by [`with_engine_events!`] around the engine's [`EngineEvent`]); the harness reads
//!   every child's stdout, stamps each line with the time since the run started and appends it to
//!   `journal.jsonl` as a [`JournalEntry`]. Human-readable logs go to stderr.
//! * **The report.** `report.json` is a [`report::Report`]; its Rust type is its schema.

pub mod access;
pub mod event;
pub mod freeze;
pub mod markup;
pub mod metrics;
pub mod procfs;
pub mod report;
#[cfg(feature = "server")]
pub mod server;
pub mod spread;
#[cfg(feature = "testing")]
pub mod testing;
pub mod units;
pub mod wire;

pub use event::{EngineEvent, EngineEventKind, EventSink, JournalEntry, RunPhase, Vocabulary};
pub use spread::Spread;
pub use units::{ByteSize, HumanDuration, UnitError};

/// The DNS zone every run serves.
pub const ZONE: &str = "lab.internal.";
