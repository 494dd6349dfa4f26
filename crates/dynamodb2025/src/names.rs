//! The processes of a 2025 run, by typed name: what the supervisor starts, the journal's
//! `source`, and `logs/<name>.log`.

use std::fmt;

use outage_lab_dynamodb_events::{ClientKind, Event};
use outage_lab_engine::supervisor::ProcessKey;
use outage_lab_proto::EngineEvent;

/// One process of a run.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProcessName {
    /// A lab DNS server (`dns-a`, ...), the engine's `dns` role.
    Dns(usize),
    /// The plan store.
    PlanStore,
    /// The planner.
    Planner,
    /// An enactor (`enactor-a`, ...).
    Enactor(usize),
    /// An instance of the service (`kv-1`, ...), one per load-balancer address.
    Kv(usize),
    /// A client of the service (`customer-1`, `dependent-1`, ...).
    Client(ClientKind, usize),
    /// EC2's lease manager.
    LeaseManager,
    /// The servers holding leases, all in one process.
    LeaseServers,
    /// The customers launching instances, all in one process.
    Launchers,
}

/// `dns-a`, `dns-b`, ...: the `n`th DNS server's name.
pub fn dns_name(n: usize) -> String {
    format!("dns-{}", letter(n))
}

/// `enactor-a`, `enactor-b`, ...: the `n`th enactor's name, as steps and events name it.
pub fn enactor_name(n: usize) -> String {
    format!("enactor-{}", letter(n))
}

fn letter(n: usize) -> char {
    (b'a' + u8::try_from(n % 26).unwrap_or(0)) as char
}

impl ProcessName {
    /// The role it runs, as its command is named.
    pub fn role(&self) -> &'static str {
        match self {
            Self::Dns(_) => "dns",
            Self::PlanStore => "plan-store",
            Self::Planner => "planner",
            Self::Enactor(_) => "enactor",
            Self::Kv(_) => "kv",
            Self::Client(..) => "kv-client",
            Self::LeaseManager => "lease-manager",
            Self::LeaseServers => "lease-servers",
            Self::Launchers => "launchers",
        }
    }
}

/// At a freeze the clients (and the lease servers and launching customers) stop first, then the automation (and the
/// lease manager), then the service; the DNS servers
/// and the plan store only answer and keep answering.
impl ProcessKey for ProcessName {
    type Event = Event;

    fn started(&self, pid: u32) -> EngineEvent {
        EngineEvent::ProcessStarted {
            name: self.to_string(),
            role: self.role().to_owned(),
            server: None,
            pid,
        }
    }

    fn freeze_rank(&self) -> Option<u8> {
        match self {
            Self::Client(..) | Self::LeaseServers | Self::Launchers => Some(0),
            Self::Planner | Self::Enactor(_) | Self::LeaseManager => Some(1),
            Self::Kv(_) => Some(2),
            Self::Dns(_) | Self::PlanStore => None,
        }
    }
}

impl fmt::Display for ProcessName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(n) => f.write_str(&dns_name(*n)),
            Self::PlanStore => f.write_str("plan-store"),
            Self::Planner => f.write_str("planner"),
            Self::Enactor(n) => f.write_str(&enactor_name(*n)),
            Self::Kv(n) => write!(f, "kv-{}", n + 1),
            Self::Client(ClientKind::Customer, n) => write!(f, "customer-{}", n + 1),
            Self::Client(ClientKind::Dependent, n) => write!(f, "dependent-{}", n + 1),
            Self::LeaseManager | Self::LeaseServers | Self::Launchers => f.write_str(self.role()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_are_named_as_people_and_steps_name_them() {
        assert_eq!(ProcessName::Dns(2).to_string(), "dns-c");
        assert_eq!(ProcessName::Enactor(0).to_string(), "enactor-a");
        assert_eq!(ProcessName::Kv(0).to_string(), "kv-1");
        let dependent = ProcessName::Client(ClientKind::Dependent, 1);
        assert_eq!(dependent.to_string(), "dependent-2");
        assert_eq!(dependent.role(), "kv-client");
    }

    #[test]
    fn clients_freeze_first_and_the_dns_servers_keep_answering() {
        let client = ProcessName::Client(ClientKind::Customer, 0).freeze_rank();
        assert!(client < ProcessName::Enactor(0).freeze_rank());
        assert_eq!(ProcessName::Dns(0).freeze_rank(), None);
    }
}
