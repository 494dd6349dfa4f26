//! The engine of outage-lab: what every incident's run uses and no incident owns. It names no
//! incident, no role of one and no fault of one (`tests/incident_free.rs` holds it to that);
//! incidents are packages above it in the crate graph, so Cargo keeps the direction.
//!
//! - [`incident`]: an incident package as the program sees it (the `Incident` trait), and which
//!   incident a scenario is for;
//! - [`args`]: the arguments of the commands every incident answers; [`exit`]: their exit
//!   codes;
//! - [`clock`]: the lab clock, which holds while a run is frozen;
//! - [`ledger`]: what a run started, so a later run reaps what a crashed one left;
//! - [`located`]: scenario errors with `file:line:column` and the field path;
//! - [`error`]: a failure of the harness itself (exit code 3);
//! - [`journal`]: `journal.jsonl` as it is written, and who reads along;
//! - [`lag`]: how late the run's scheduled work fired, and whether the run kept its pace;
//! - [`experiment`]: runs the cells of `compare` and `grid` as child runs, several at once;
//! - [`logs`]: the logs a run leaves;
//! - [`plot`]: the SVG kit of every report page (time and value axes, the run's phases and
//!   steps, polylines);
//! - [`runtime`]: the one-thread runtime every process uses;
//! - [`roles`]: what every role command needs, and the role commands every incident's runs use
//!   (the lab's DNS server);
//! - [`checks`]: the verdict rows about the run itself (interrupted, memory, lost hosts,
//!   leftovers);
//! - [`run_dir`]: where a run writes by default (`runs/<scenario>-<UTC time>-seed<seed>`);
//! - [`supervisor`]: starts, hears, freezes and stops the processes of a run, here or on
//!   launcher hosts;
//! - [`terminal`]: what the person watching a run sees (plain lines, and a live line on a
//!   terminal).

pub mod args;
pub mod checks;
pub mod clock;
pub mod error;
pub mod exit;
pub mod experiment;
pub mod incident;
pub mod journal;
pub mod lag;
pub mod ledger;
pub mod located;
pub mod logs;
pub mod overrides;
pub mod plot;
pub mod roles;
pub mod run_dir;
pub mod runtime;
pub mod supervisor;
pub mod terminal;
