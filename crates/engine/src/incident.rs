//! An incident package, as the program sees it: the commands every incident answers, its own
//! commands beside them, and which incident a scenario is for.
//!
//! The program (`crates/outage-lab`) holds one registry line per incident and parses the command
//! line; a command about a scenario goes to the incident the scenario's `incident:` names (the
//! first registered when it names none), a command about a run directory to the incident of the
//! scenario the run kept (`RUN_DIR/scenario.yaml`).

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use serde::Deserialize;

use crate::args::{CompareArgs, GridArgs, ReportArgs, RunArgs, WorkshopArgs};

/// Largest scenario file anyone reads: a scenario is a few KiB; a path that never ends
/// (`/dev/zero`) or a huge file is refused at this many bytes, before it is parsed.
pub const MAX_SCENARIO_BYTES: u64 = 1024 * 1024;

/// One incident: what the program asks of its package.
pub trait Incident: Sync {
    /// Its name, as a scenario's `incident:` names it.
    fn name(&self) -> &'static str;

    /// What it is, in one line, for `--help`.
    fn title(&self) -> &'static str;

    /// Its fixes' names (`--fix`), for `--help`.
    fn fixes(&self) -> Vec<&'static str>;

    /// The metrics `grid --metric` can map, the default first, for `--help`.
    fn metrics(&self) -> Vec<&'static str>;

    /// `outage-lab run`.
    fn run(&self, args: RunArgs) -> ExitCode;

    /// `outage-lab workshop` (with no scenario: the incident's own, built in).
    fn workshop(&self, args: WorkshopArgs) -> ExitCode;

    /// `outage-lab validate` of one file: the line to print, or the refusal (exit 2).
    fn validate(&self, path: &Path) -> Result<String, String>;

    /// `outage-lab report` of one of its runs.
    fn report(&self, args: &ReportArgs) -> ExitCode;

    /// `outage-lab compare`.
    fn compare(&self, args: &CompareArgs) -> ExitCode;

    /// `outage-lab grid`.
    fn grid(&self, args: &GridArgs) -> ExitCode;

    /// Its own commands beside those (its hidden role commands, say), added to the program's.
    fn commands(&self) -> Vec<clap::Command>;

    /// Runs the command `matches` (the program's) names, if it is one of its own.
    fn dispatch(&self, matches: &clap::ArgMatches) -> Option<ExitCode>;
}

/// The commands of `S` (an incident's own, or the engine's roles), to add to the program's.
pub fn own_commands<S: clap::Subcommand>() -> Vec<clap::Command> {
    let own = S::augment_subcommands(clap::Command::new("own"));
    own.get_subcommands().cloned().collect()
}

/// Runs the command `matches` names with `run`, if it is one of `S`'s; `None` if it is not.
pub fn dispatch_own<S: clap::Subcommand + clap::FromArgMatches>(
    matches: &clap::ArgMatches,
    run: impl FnOnce(S) -> ExitCode,
) -> Option<ExitCode> {
    let (name, _) = matches.subcommand()?;
    if !S::has_subcommand(name) {
        return None;
    }
    Some(match S::from_arg_matches(matches) {
        Ok(own) => run(own),
        Err(e) => e.exit(),
    })
}

/// A scenario that names an incident this build does not know.
#[derive(Debug, thiserror::Error)]
#[error("{shown}: `incident: {name}` is not an incident this build knows; it knows {known}")]
pub struct UnknownIncident {
    /// The scenario file, for people.
    pub shown: String,
    /// The name it gave.
    pub name: String,
    /// The names this build knows, comma-separated.
    pub known: String,
}

/// The incident `scenario` is for: the one its `incident:` names, else the first registered.
/// A file that cannot be read or parsed, or is over [`MAX_SCENARIO_BYTES`], goes to the first
/// too, whose loader says what is wrong with it, with the place.
pub fn for_scenario<'a>(
    incidents: &[&'a dyn Incident],
    scenario: &Path,
) -> Result<&'a dyn Incident, UnknownIncident> {
    let Some(name) = named_by(scenario) else {
        return Ok(incidents[0]);
    };
    (incidents.iter().find(|i| i.name() == name).copied()).ok_or_else(|| UnknownIncident {
        shown: scenario.display().to_string(),
        name,
        known: (incidents.iter().map(|i| i.name()))
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// The incident the scenario at `path` names (`incident:` at its top level), if it can be read
/// and names one: how a package's tests tell its own shipped scenarios from another's.
pub fn named_by(path: &Path) -> Option<String> {
    read_bounded(path).and_then(|text| named_incident(&text))
}

/// The file's text, unless it cannot be read, is not UTF-8 or is over [`MAX_SCENARIO_BYTES`].
fn read_bounded(path: &Path) -> Option<String> {
    let mut bytes = Vec::new();
    let file = std::fs::File::open(path).ok()?;
    file.take(MAX_SCENARIO_BYTES + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes.len() as u64 > MAX_SCENARIO_BYTES {
        return None;
    }
    String::from_utf8(bytes).ok()
}

/// The `incident:` a scenario's text names at its top level, if it parses and names one.
fn named_incident(text: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Head {
        incident: Option<String>,
    }
    serde_saphyr::from_str::<Head>(text).ok()?.incident
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_names_its_incident_at_the_top_level_or_not_at_all() {
        let named = "name: x\nincident: dns-race\nfleet: { servers: 3 }\n";
        assert_eq!(named_incident(named).as_deref(), Some("dns-race"));
        assert_eq!(named_incident("name: x\nfleet: { servers: 3 }\n"), None);
        assert_eq!(named_incident("fleet: { incident: inner }\n"), None);
        assert_eq!(named_incident(": not yaml ["), None);
    }

    #[test]
    fn a_path_that_never_ends_is_read_no_further_than_the_limit() {
        assert_eq!(read_bounded(Path::new("/dev/zero")), None);
        assert_eq!(read_bounded(Path::new("/no/such/file")), None);
    }
}
