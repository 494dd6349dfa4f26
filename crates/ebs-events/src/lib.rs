//! The EBS 2012 incident's vocabulary: what its processes tell the harness (agents, collectors,
//! storage servers, the control plane, the watchdog, the customers' load), one flat [`Event`]
//! enum with the engine's kinds beside them, and the 2012 fleet's wire messages (`wire`).
//!
//! The role crates, the report and the 2012 package speak it; the engine never names it: it
//! reads these events through `outage_lab_proto::Vocabulary`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

pub mod wire;

/// The name agents resolve to find the collector.
pub const COLLECTOR_NAME: &str = "collector.lab.internal.";

/// One line of the 2012 incident's `journal.jsonl`.
pub type JournalEntry = outage_lab_proto::JournalEntry<Event>;

/// Where a 2012 role sends its events.
pub type EventSink = outage_lab_proto::EventSink<Event>;

/// Which kind of process a sample or alarm is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessRole {
    /// A reporting agent on a storage server.
    Agent,
    /// A storage server process.
    Storage,
}

impl fmt::Display for ProcessRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProcessRole::Agent => "agent",
            ProcessRole::Storage => "storage",
        })
    }
}

/// The role command a process of a run runs (`outage-lab <role>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An internal DNS server.
    Dns,
    /// A data-collection server.
    Collector,
    /// A storage server's reporting agent.
    Agent,
    /// A storage server.
    Storage,
    /// The EBS control plane.
    Control,
    /// The memory watchdog.
    Watchdog,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 6] = [
        Role::Dns,
        Role::Collector,
        Role::Agent,
        Role::Storage,
        Role::Control,
        Role::Watchdog,
    ];

    /// The role a journal's `process_started` names (`None` for one this incident has not).
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }

    /// The role command's name, as on the command line and in the journal.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Dns => "dns",
            Role::Collector => "collector",
            Role::Agent => "agent",
            Role::Storage => "storage",
            Role::Control => "control",
            Role::Watchdog => "watchdog",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two alarms the watchdog runs side by side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// The fixed monitoring: a sustained upward trend of one process's resident memory.
    Leak,
    /// The 2012 monitoring: a server's aggregate memory in use above a threshold.
    Aggregate,
    /// The fixed general monitoring: a server's memory in use net of what its storage cache
    /// could give back, above a threshold (`cache_aware_aggregate_alarm`). Its own kind, so a
    /// comparison never puts it in the 2012 alarm's column.
    CacheAwareAggregate,
}

impl AlarmKind {
    /// Every kind, in the order they are declared.
    pub const ALL: [AlarmKind; 3] = [
        AlarmKind::Leak,
        AlarmKind::Aggregate,
        AlarmKind::CacheAwareAggregate,
    ];

    /// Whether it judges a whole server (the aggregate alarms), not one process.
    pub fn per_server(self) -> bool {
        self != AlarmKind::Leak
    }
}

impl fmt::Display for AlarmKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AlarmKind::Leak => "leak",
            AlarmKind::Aggregate => "aggregate",
            AlarmKind::CacheAwareAggregate => "cache_aware_aggregate",
        })
    }
}

/// The state of one volume, as the control plane sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VolumeState {
    /// Primary and mirror both serve; writes are acknowledged once both hold them.
    Healthy,
    /// One replica serves reads; writes wait until a new mirror holds the data.
    Degraded,
    /// No replica can serve, or no server had capacity for a new mirror: I/O is refused.
    Stuck,
}

impl fmt::Display for VolumeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VolumeState::Healthy => "healthy",
            VolumeState::Degraded => "degraded",
            VolumeState::Stuck => "stuck",
        })
    }
}

/// What a failover decision came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailoverOutcome {
    /// A healthy server with a free slot was chosen and the data copied to it.
    Remirrored,
    /// No healthy server had a free slot: the volume is stuck until one has.
    NoCapacity,
    /// Neither replica serves: nothing to copy from, the volume is stuck.
    NoHealthyReplica,
    /// The copy to the chosen server failed; control will try again.
    CopyFailed,
}

/// One resident-memory reading of one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RssSample {
    /// Storage server the process belongs to (`s000`, `s001`, ...).
    pub server: String,
    /// Agent or storage.
    pub role: ProcessRole,
    /// Process id.
    pub pid: u32,
    /// Resident set size in bytes, as the kernel accounts it.
    pub rss_bytes: u64,
}

outage_lab_proto::with_engine_events! {
    /// Something that happened in a 2012 run, told by a role process or by the harness.
    enum Event; kind EventKind;
    incident {
        /// An agent's resolved collector address set changed (including the first resolution).
        AgentResolved = "agent_resolved" {
            /// Storage server the agent runs on.
            server: String,
            /// Addresses the agent's resolver returned.
            addrs: Vec<IpAddr>,
        },
        /// An agent could not resolve the collector name.
        AgentResolveFailed = "agent_resolve_failed" {
            /// Storage server the agent runs on.
            server: String,
            /// What the resolver said.
            error: String,
        },
        /// An agent's periodic counters.
        AgentStats = "agent_stats" {
            /// Storage server the agent runs on.
            server: String,
            /// Reports the collector accepted.
            ok_reports: u64,
            /// Report attempts that failed (connect, timeout, HTTP error).
            failed_reports: u64,
            /// Reports held for retry right now.
            pending_reports: u64,
            /// Bytes held in retry state (the leak, in leaky mode).
            retained_bytes: u64,
        },
        /// The collector's periodic counters.
        CollectorStats = "collector_stats" {
            /// Reports accepted since start.
            total_reports: u64,
            /// Reports accepted per storage server.
            per_server: BTreeMap<String, u64>,
        },
        /// A storage server's periodic state.
        StorageStats = "storage_stats" {
            /// Server id.
            server: String,
            /// Bytes of block cache currently resident.
            cache_bytes: u64,
            /// What the cache should hold given the budget and the agent's memory.
            cache_target_bytes: u64,
            /// The agent's resident memory as last read from /proc.
            agent_rss_bytes: u64,
            /// Whether the cache can no longer hold the working set.
            degraded: bool,
        },
        /// One watchdog sweep: the resident memory of every watched process.
        RssSweep = "rss_sweep" {
            /// One reading per live watched process.
            samples: Vec<RssSample>,
        },
        /// The watchdog raised an alarm.
        Alarm = "alarm" {
            /// Which alarm.
            alarm: AlarmKind,
            /// Server the alarm is about.
            server: String,
            /// The process for a leak alarm; `None` for a per-server aggregate alarm.
            role: Option<ProcessRole>,
            /// Process id for a leak alarm.
            pid: Option<u32>,
            /// The numbers that made it fire.
            detail: String,
        },

        /// The control plane's judgement of a storage server changed (from its health probes).
        ServerHealth = "server_health" {
            /// Server id.
            server: String,
            /// Whether control now counts it as serving I/O.
            healthy: bool,
            /// The probe evidence (`3 probes failed in a row: deadline exceeded`).
            detail: String,
        },
        /// A volume changed state (placement, failover, re-mirror, stuck, recovered).
        VolumeChanged = "volume_changed" {
            /// Volume id (`v0007`).
            volume: String,
            /// Its new state.
            state: VolumeState,
            /// The server serving it (`None` while no replica can serve).
            primary: Option<String>,
            /// The server holding its mirror (`None` while it has none).
            mirror: Option<String>,
            /// Every server holding an up-to-date copy (primary first): the servers a stuck volume
            /// is stuck on.
            replicas: Vec<String>,
            /// Why it changed.
            reason: String,
        },
        /// A failover decision of the control plane.
        Failover = "failover" {
            /// Volume id.
            volume: String,
            /// The unhealthy server the volume is moving away from.
            from: String,
            /// The server chosen to receive the new mirror, if any had capacity.
            to: Option<String>,
            /// What was decided.
            outcome: FailoverOutcome,
            /// The numbers behind it.
            detail: String,
        },
        /// The control plane's periodic volume counts.
        ControlStats = "control_stats" {
            /// Volumes placed.
            total: u64,
            /// Volumes with two serving replicas.
            healthy: u64,
            /// Volumes serving from one replica while failing over or re-mirroring.
            degraded: u64,
            /// Volumes that cannot serve I/O.
            stuck: u64,
            /// Failovers begun since start.
            failovers_attempted: u64,
            /// Failovers that found no healthy server with spare capacity.
            failovers_without_capacity: u64,
        },
        /// The customer load's counters over the last window (told by the harness).
        LoadStats = "load_stats" {
            /// Requests finished in the window.
            requests: u64,
            /// Requests acknowledged in the window.
            ok: u64,
            /// Requests refused, failed or past their deadline in the window.
            errors: u64,
            /// Median latency in the window, ms.
            p50_ms: f64,
            /// 99th-percentile latency in the window, ms.
            p99_ms: f64,
        },
        /// One customer account's API calls over the last window (told by the harness).
        CustomerStats = "customer_stats" {
            /// Account name (`c01`).
            customer: String,
            /// Whether any of its volumes has been stuck so far.
            affected: bool,
            /// Its calls in the window, by outcome.
            #[serde(flatten)]
            calls: outage_lab_proto::report::ApiCalls,
        },
    }
}
