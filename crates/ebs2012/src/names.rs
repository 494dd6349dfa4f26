//! Typed names of the processes of a run.
//!
//! A process is named once, as a [`ProcessName`], where the harness decides to start it; the
//! supervisor, the journal, the run state and the checks all take that value. The string form
//! (`agent-s003`, `collector-old`, `dns-a`) exists for people and files only (log file names,
//! `endpoints.json`, the journal's `source`): nothing parses it back. The journal carries the
//! role and the server of every started process as fields of their own.

use std::fmt;

use outage_lab_ebs_events::{Event, ProcessRole, Role};
use outage_lab_engine::supervisor::ProcessKey;
use outage_lab_proto::EngineEvent;

/// Which of the two collectors: the one that fails, or its replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Generation {
    /// The collector the fleet starts with; its hardware fails.
    Old,
    /// The replacement, on a new address.
    New,
}

/// One process of a run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProcessName {
    /// An internal DNS server, by the name the scenario gives it.
    Dns(String),
    /// A data-collection server.
    Collector(Generation),
    /// The memory watchdog.
    Watchdog,
    /// The EBS control plane.
    Control,
    /// The reporting agent of a storage server (by server id).
    Agent(String),
    /// The storage process of a storage server (by server id).
    Storage(String),
}

impl ProcessName {
    /// The agent or storage process of `server`.
    pub fn on_server(role: ProcessRole, server: &str) -> Self {
        match role {
            ProcessRole::Agent => Self::Agent(server.to_owned()),
            ProcessRole::Storage => Self::Storage(server.to_owned()),
        }
    }

    /// The role command the process runs.
    pub fn role(&self) -> Role {
        match self {
            Self::Dns(_) => Role::Dns,
            Self::Collector(_) => Role::Collector,
            Self::Watchdog => Role::Watchdog,
            Self::Control => Role::Control,
            Self::Agent(_) => Role::Agent,
            Self::Storage(_) => Role::Storage,
        }
    }

    /// The storage server it belongs to, for an agent or a storage process.
    pub fn server(&self) -> Option<&str> {
        match self {
            Self::Agent(id) | Self::Storage(id) => Some(id),
            _ => None,
        }
    }
}

/// How the engine's supervisor records and freezes the 2012 fleet's processes.
///
/// At a workshop stop the agents (the lab's or any program's, whole process group), control,
/// the watchdog and the storage servers are frozen, clients first: nothing leaks, probes or
/// fails over while the room talks. The DNS servers and collectors only answer questions and
/// change nothing on their own, so they keep answering (`dig` and `curl` work at a stop), and
/// nothing they do then moves a number the alarms read. The harness's own customer load and API
/// automation send nothing while frozen, the watchdog stamps samples with active time, and the
/// fixes that act after a delay count only time the run ran.
impl ProcessKey for ProcessName {
    type Event = Event;

    fn started(&self, pid: u32) -> EngineEvent {
        EngineEvent::ProcessStarted {
            name: self.to_string(),
            role: self.role().to_string(),
            server: self.server().map(str::to_owned),
            pid,
        }
    }

    fn freeze_rank(&self) -> Option<u8> {
        match self {
            Self::Agent(_) => Some(0),
            Self::Control => Some(1),
            Self::Watchdog => Some(2),
            Self::Storage(_) => Some(3),
            Self::Dns(_) | Self::Collector(_) => None,
        }
    }
}

impl fmt::Display for ProcessName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(name) => f.write_str(name),
            Self::Collector(Generation::Old) => f.write_str("collector-old"),
            Self::Collector(Generation::New) => f.write_str("collector-new"),
            Self::Watchdog => f.write_str("watchdog"),
            Self::Control => f.write_str("control"),
            Self::Agent(id) => write!(f, "agent-{id}"),
            Self::Storage(id) => write!(f, "storage-{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_as_they_always_did_in_logs_and_files() {
        assert_eq!(ProcessName::Agent("s003".into()).to_string(), "agent-s003");
        assert_eq!(
            ProcessName::Storage("s010".into()).to_string(),
            "storage-s010"
        );
        assert_eq!(ProcessName::Dns("dns-c".into()).to_string(), "dns-c");
        assert_eq!(
            ProcessName::Collector(Generation::Old).to_string(),
            "collector-old"
        );
    }

    #[test]
    fn a_server_process_knows_its_role_and_server() {
        let name = ProcessName::on_server(ProcessRole::Storage, "s001");
        assert_eq!(name.role(), Role::Storage);
        assert_eq!(name.server(), Some("s001"));
        assert_eq!(ProcessName::Watchdog.server(), None);
    }

    #[test]
    fn a_freeze_stops_clients_before_servers_and_leaves_dns_and_collectors_answering() {
        let rank = |n: ProcessName| n.freeze_rank();
        let agent = rank(ProcessName::Agent("s000".into())).expect("frozen");
        let control = rank(ProcessName::Control).expect("frozen");
        let watchdog = rank(ProcessName::Watchdog).expect("frozen");
        let storage = rank(ProcessName::Storage("s000".into())).expect("frozen");
        assert!(agent < control && control < watchdog && watchdog < storage);
        assert_eq!(rank(ProcessName::Dns("dns-a".into())), None);
        assert_eq!(rank(ProcessName::Collector(Generation::New)), None);
    }
}
