//! An agent the lab did not write: `agent: { command, env, files, may_exit }` runs any program as
//! the reporting agent of every storage server, in place of the built-in one.
//!
//! - **Placeholders.** `{{name}}` in the command, the environment's values and the files'
//!   contents is filled per storage server ([`PLACEHOLDERS`]). The collector URL uses the name
//!   `collector.lab.internal`, so the program resolves it itself, and a path naming the server
//!   (`/agents/<server>/`), so the collector attributes its reports whatever the source address.
//! - **Files.** `files:` maps a path inside the agent's private working directory
//!   (`<run>/agents/<server>/`) to a template, written before the program starts.
//! - **DNS through the lab, with no change to the program.** Locally the program runs in a
//!   private mount namespace in which `/etc/resolv.conf` names its server's lab DNS server (which
//!   then also answers on port 53 of its own address) and `/etc/hosts` holds only `localhost`.
//!   That needs `CAP_SYS_ADMIN` (the namespace) and `CAP_NET_BIND_SERVICE` (port 53):
//!   [`check_privileges`] refuses the run before anything starts when they are missing.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Component, Path, PathBuf};

use serde_saphyr::Spanned;

use outage_lab_engine::located::{Locator, ScenarioError};

/// The placeholders a template may use, and what each becomes.
pub const PLACEHOLDERS: &[(&str, &str)] = &[
    (
        "collector_url",
        "http://collector.lab.internal:<port>/agents/<server>/ (POST anything under it)",
    ),
    ("collector_host", "collector.lab.internal"),
    ("collector_port", "the collector's port"),
    ("server", "the storage server's id, e.g. s003"),
    (
        "server_ip",
        "the storage server's own loopback address (an agent that listens binds here)",
    ),
    ("dns_server", "the address of the server's lab DNS server"),
    ("workdir", "the agent's private working directory"),
    ("scenario_dir", "the directory of the scenario file"),
];

/// The port DNS clients use when resolv.conf names a server: the lab's DNS servers answer on it
/// too when an external agent runs.
pub const DNS_PORT: u16 = 53;

/// The `command:`, `env:`, `files:` and `may_exit:` fields of the `agent:` section, when
/// `command:` is there.
#[derive(Debug, Clone)]
pub struct ExternalAgent {
    /// The program and its arguments (templates).
    pub command: Spanned<Vec<String>>,
    /// Environment variables set for it (values are templates); of the harness's own it
    /// inherits only [`outage_lab_host::AGENT_INHERITED_ENV`].
    pub env: BTreeMap<String, String>,
    /// Files written into its working directory before it starts: relative path to template.
    pub files: BTreeMap<String, String>,
    /// Whether it may exit on its own; if not, an exit fails `processes_stayed_up`.
    pub may_exit: bool,
}

/// What the placeholders become for one storage server.
#[derive(Debug, Clone)]
pub struct Values {
    /// Storage server id.
    pub server: String,
    /// The storage server's own address.
    pub server_ip: Ipv4Addr,
    /// The collector's port.
    pub collector_port: u16,
    /// The server's DNS server.
    pub dns_server: Ipv4Addr,
    /// The agent's working directory.
    pub workdir: PathBuf,
    /// The scenario file's directory.
    pub scenario_dir: PathBuf,
}

impl Values {
    fn get(&self, name: &str) -> Option<String> {
        Some(match name {
            "collector_url" => format!(
                "http://{}:{}/agents/{}/",
                outage_lab_ebs_events::COLLECTOR_NAME.trim_end_matches('.'),
                self.collector_port,
                self.server
            ),
            "collector_host" => outage_lab_ebs_events::COLLECTOR_NAME
                .trim_end_matches('.')
                .to_owned(),
            "collector_port" => self.collector_port.to_string(),
            "server" => self.server.clone(),
            "server_ip" => self.server_ip.to_string(),
            "dns_server" => self.dns_server.to_string(),
            "workdir" => self.workdir.display().to_string(),
            "scenario_dir" => self.scenario_dir.display().to_string(),
            _ => return None,
        })
    }
}

/// Fills every `{{name}}` of `template` (names were checked by [`ExternalAgent::validate`]; an
/// unknown one is left as written).
pub fn render(template: &str, values: &Values) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let name = after[..end].trim();
                match values.get(name) {
                    Some(value) => out.push_str(&value),
                    None => out.push_str(&rest[start..start + 4 + end]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The placeholder names `template` uses.
fn names(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        out.push(after[..end].trim());
        rest = &after[end + 2..];
    }
    out
}

impl ExternalAgent {
    /// The command is not empty, every placeholder is known, every file stays inside the
    /// working directory.
    pub fn validate(&self, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        if self
            .command
            .value
            .first()
            .is_none_or(|p| p.trim().is_empty())
        {
            return Err(loc.at(
                &self.command,
                "agent.command is empty; expected the program and its arguments, e.g. [python3, agent.py, \"{{collector_url}}\"]".into(),
            ));
        }
        let known: Vec<&str> = PLACEHOLDERS.iter().map(|(n, _)| *n).collect();
        let templates = (self
            .command
            .value
            .iter()
            .map(|t| (vec!["agent", "command"], t)))
        .chain(
            self.env
                .iter()
                .map(|(k, t)| (vec!["agent", "env", k.as_str()], t)),
        )
        .chain((self.files.iter()).map(|(k, t)| (vec!["agent", "files", k.as_str()], t)));
        for (path, template) in templates {
            if let Some(bad) = names(template).into_iter().find(|n| !known.contains(n)) {
                return Err(loc.at_path(
                    &[&path],
                    format!(
                        "{} uses the placeholder {{{{{bad}}}}}, which the lab does not fill; expected one of {}",
                        path.join("."),
                        known.join(", ")
                    ),
                ));
            }
        }
        for name in self.env.keys() {
            let usable = !name.is_empty()
                && (name.chars()).all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if !usable {
                return Err(loc.at_path(
                    &[&["agent", "env", name]],
                    format!("agent.env names the variable {name:?}; expected letters, digits and '_', not starting with a digit"),
                ));
            }
        }
        for path in self.files.keys() {
            let relative = Path::new(path);
            let inside = !path.is_empty()
                && (relative.components()).all(|c| matches!(c, Component::Normal(_)));
            if !inside {
                return Err(loc.at_path(
                    &[&["agent", "files", path]],
                    format!("agent.files names {path:?}; expected a relative path inside the agent's working directory (no '..', not absolute)"),
                ));
            }
        }
        Ok(())
    }
}

/// Capability bits (linux/capability.h).
const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_SYS_ADMIN: u32 = 21;

/// What the run cannot do without, as a sentence for the refusal; `None` when it has all.
pub fn check_privileges() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let effective = (status.lines())
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    let has = |bit: u32| effective & (1 << bit) != 0;
    let unprivileged_port_start =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok())
            .unwrap_or(1024);
    let mut missing = Vec::new();
    if !has(CAP_SYS_ADMIN) {
        missing.push("CAP_SYS_ADMIN (to give each agent a private mount namespace with its own /etc/resolv.conf)");
    }
    if !has(CAP_NET_BIND_SERVICE) && unprivileged_port_start > DNS_PORT {
        missing.push("CAP_NET_BIND_SERVICE (for the lab's DNS servers to answer on port 53)");
    }
    if missing.is_empty() {
        return None;
    }
    Some(format!(
        "an external agent (agent.command) resolves the lab's names through /etc/resolv.conf, which needs {}; run as root (e.g. sudo), or use the compose deployment, where the storage service's `dns:` does this without privileges",
        missing.join(" and ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Values {
        Values {
            server: "s003".into(),
            server_ip: Ipv4Addr::new(127, 9, 1, 4),
            collector_port: 4242,
            dns_server: Ipv4Addr::new(127, 9, 0, 2),
            workdir: "/run/a".into(),
            scenario_dir: "/sc".into(),
        }
    }

    #[test]
    fn placeholders_are_filled_per_server_and_other_braces_are_kept() {
        let out = render(
            "url={{collector_url}} id={{ server }} dns={{dns_server}} {json} {{",
            &values(),
        );
        assert_eq!(
            out,
            "url=http://collector.lab.internal:4242/agents/s003/ id=s003 dns=127.9.0.2 {json} {{"
        );
    }

    #[test]
    fn an_unknown_placeholder_is_left_as_written() {
        assert_eq!(render("a{{nope}}b", &values()), "a{{nope}}b");
        assert_eq!(names("{{a}} and {{ b }}"), vec!["a", "b"]);
    }
}
