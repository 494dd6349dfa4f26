//! The 2012 incident's own commands beside the engine's: `ctl` (its arguments here; doc
//! comments are the `--help` text) and the hidden role commands (`roles.rs`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// The commands the 2012 incident adds to the program's.
#[derive(Debug, Subcommand)]
pub enum Own {
    /// Act on a live workshop through its control API, with the run's token.
    ///
    /// Exit 0 done; 1 the run refused (the answer says why, e.g. not at a stop); 2 bad input or
    /// no live workshop in RUN_DIR.
    ///
    /// Example: outage-lab ctl runs/ebs-2012-10-22-20261129T120000Z-seed20121022 repair dns-c
    Ctl(CtlArgs),
    /// The hidden role commands the harness spawns, and the launcher.
    #[command(flatten)]
    Role(crate::roles::RoleCommand),
}

/// `outage-lab ctl`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The run directory of a live workshop (printed when it starts).
    pub run_dir: PathBuf,
    /// What to do.
    #[command(subcommand)]
    pub action: CtlAction,
    /// Who acts, as the journal records it [default: $USER].
    #[arg(long = "as", value_name = "NAME", global = true)]
    pub who: Option<String>,
}

/// What `ctl` does.
#[derive(Debug, Subcommand)]
pub enum CtlAction {
    /// Where the run is: the current stop, the monitors, what was done (JSON with --json).
    Status {
        /// Print the control API's JSON as it is.
        #[arg(long)]
        json: bool,
    },
    /// Go on from the current stop.
    Next,
    /// Point collector.lab.internal at the replacement on these DNS servers (none: all).
    Repair {
        /// DNS server names (dns-a, ...), or all.
        dns: Vec<String>,
    },
    /// Restart these storage servers' agents (frees what they leaked).
    Restart {
        /// Server ids (s003 ...), or all.
        #[arg(required = true)]
        servers: Vec<String>,
    },
}
