//! The event protocol: what role processes tell the harness, and what the journal records.
//!
//! A role process writes each [`Event`] as one JSON line on stdout through an [`EventSink`].
//! The harness adds its own events (process started, fault injected, verdicts) and writes all of
//! them to `journal.jsonl` as [`JournalEntry`] lines: `{"t_ms":1234,"source":"agent-s003",
//! "kind":"agent_resolved",...}`.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

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

/// The phases of a run the journal marks with a `phase` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunPhase {
    /// The fleet is up and the timeline plays: the time axis of every plot starts here.
    Timeline,
    /// Every process of the run is being stopped: what follows is not the run's behaviour.
    Stopping,
}

impl RunPhase {
    /// The name the journal writes.
    pub fn name(self) -> &'static str {
        match self {
            RunPhase::Timeline => "timeline",
            RunPhase::Stopping => "stopping",
        }
    }
}

impl fmt::Display for RunPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Declares the event vocabulary once: the [`Event`] enum (its serde `kind` tag is the name
/// written here), [`EventKind`] (which event, without its fields) with every kind in
/// [`EventKind::ALL`], and [`Event::kind`]. Every list of kinds (the journal reader, the live
/// page, the report's plots) is derived from [`EventKind`], so none can drift from the enum.
macro_rules! events {
    ($($(#[$doc:meta])* $variant:ident = $name:literal { $($body:tt)* },)*) => {
        /// Something that happened, told by a role process or by the harness.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind")]
        pub enum Event {
            $($(#[$doc])* #[serde(rename = $name)] $variant { $($body)* },)*
        }

        /// Which event, without its fields: the `kind` tag of a journal line.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum EventKind {
            $($(#[$doc])* $variant,)*
        }

        impl EventKind {
            /// Every kind, in the order they are declared.
            pub const ALL: &[EventKind] = &[$(EventKind::$variant,)*];

            /// The `kind` tag, as in the journal.
            pub fn name(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $name,)*
                }
            }

            /// The kind a journal line's tag names (`None` for a tag this build does not know).
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($name => Some(EventKind::$variant),)*
                    _ => None,
                }
            }
        }

        impl Event {
            /// Which event this is.
            pub fn kind(&self) -> EventKind {
                match self {
                    $(Event::$variant { .. } => EventKind::$variant,)*
                }
            }
        }
    };
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

events! {
    // --- told by role processes -----------------------------------------------------------
    /// A role is bound and serving. Always the first event of a role process.
    Ready = "ready" {
        /// Role name (`dns`, `collector`, `agent`, `storage`, `watchdog`).
        role: String,
        /// The real addresses it serves on, by purpose (`dns`, `admin`, `http`).
        addrs: BTreeMap<String, SocketAddr>,
    },
    /// A DNS server's answer for a name changed (admin update).
    DnsRecordChanged = "dns_record_changed" {
        /// Fully qualified name.
        name: String,
        /// The new A record set.
        addrs: Vec<IpAddr>,
        /// The zone's SOA serial after the change.
        serial: u32,
    },
    /// How often a DNS server has answered the collector's name so far, by address in the
    /// answer (cumulative; told about once a second, when it changed). The evidence of what an
    /// agent the lab did not write resolved: it tells the lab nothing itself.
    DnsAnswers = "dns_answers" {
        /// Answers to `collector.lab.internal A` so far, by address answered.
        collector: BTreeMap<IpAddr, u64>,
    },
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
        calls: crate::report::ApiCalls,
    },

    // --- told by the harness --------------------------------------------------------------
    /// The run began.
    RunStarted = "run_started" {
        /// Scenario name.
        scenario: String,
        /// The seed every random choice flows from.
        seed: u64,
        /// Storage servers in the fleet.
        servers: usize,
    },
    /// A scenario phase began (for people reading the journal or the terminal).
    Phase = "phase" {
        /// Which phase.
        name: RunPhase,
        /// What happens in it.
        detail: String,
    },
    /// The harness started a process.
    ProcessStarted = "process_started" {
        /// Process name in the run (`dns-a`, `agent-s003`, ...), for people: read `role` and
        /// `server` to know what it is.
        name: String,
        /// The role command it runs.
        role: Role,
        /// The storage server it belongs to (agents and storage processes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server: Option<String>,
        /// Process id.
        pid: u32,
    },
    /// A process of the run exited.
    ProcessExited = "process_exited" {
        /// Process name in the run.
        name: String,
        /// Process id.
        pid: u32,
        /// How it ended (`exit status: 0`, `signal: 9 (SIGKILL)`).
        status: String,
        /// Whether the harness asked it to stop.
        expected: bool,
    },
    /// The harness injected a fault or a repair.
    FaultInjected = "fault_injected" {
        /// Timeline action (`replace_collector`, `dns_update`, ...).
        action: String,
        /// What exactly was done.
        detail: String,
    },
    /// A fix did something (`fixes:` in the scenario): restarted an agent, re-pushed a DNS
    /// record, put a limit in place.
    FixApplied = "fix_applied" {
        /// The fix's name (`leak_alarm_action`, `dns_verification`, ...).
        fix: String,
        /// The storage server it acted on, if one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server: Option<String>,
        /// The process it acted on, if one (`agent-s003`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        process: Option<String>,
        /// What it saw and did, with the numbers.
        detail: String,
    },
    /// `outage-lab workshop` stopped the run at a link of the causal chain: every process that
    /// acts on its own is frozen and the lab clock holds until the facilitator goes on.
    WorkshopStop = "workshop_stop" {
        /// The link (`first_leak_alarm`, ...).
        link: String,
        /// Its number in the chain, from 1.
        number: u32,
        /// What this run shows of it, with the evidence.
        evidence: String,
    },
    /// The run went on after a workshop stop.
    WorkshopResumed = "workshop_resumed" {
        /// The link it stopped at.
        link: String,
        /// How long the run was frozen (wall time; the lab clock did not move).
        frozen_ms: u64,
    },
    /// A participant acted on a live run (`outage-lab ctl`, or the live page).
    ParticipantAction = "participant_action" {
        /// Who (`ctl --as NAME`, else the user name).
        who: String,
        /// `repair_dns`, `restart_agents` or `next`.
        action: String,
        /// What it acted on (DNS servers, server ids).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        targets: Vec<String>,
        /// Whether it acts on the cause: a stale DNS server, or the agent of a stale server.
        correct: bool,
        /// What was done.
        detail: String,
    },
    /// How a workshop's room did: time to detect and to mitigate, in lab milliseconds.
    WorkshopOutcome = "workshop_outcome" {
        /// The first correct action, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detect_ms: Option<u64>,
        /// When every stale DNS server was repaired and every stale agent restarted after it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mitigate_ms: Option<u64>,
        /// The whole outcome in words.
        detail: String,
    },
    /// An expectation was checked.
    Verdict = "verdict" {
        /// Expectation name.
        name: String,
        /// Whether it held.
        passed: bool,
        /// The evidence.
        detail: String,
    },
    /// The run ended.
    RunFinished = "run_finished" {
        /// `pass` or `fail`.
        verdict: String,
    },
}

/// One line of `journal.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Milliseconds since the run started, as the harness saw it.
    pub t_ms: u64,
    /// Who told it: a process name of the run, or `harness`.
    pub source: String,
    /// The teller's pid (absent for the harness). Tells a restarted process's lives apart.
    /// Named apart from the `pid` some events carry, which the flattened event keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_pid: Option<u32>,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

/// Where a role sends its events. Cheap to clone.
///
/// In a role process this is [`EventSink::stdout`]; in tests it is [`EventSink::channel`], so a
/// test can wait for readiness or a record change without parsing text.
#[derive(Clone)]
pub struct EventSink {
    send: Arc<dyn Fn(Event) + Send + Sync>,
}

impl fmt::Debug for EventSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSink").finish_non_exhaustive()
    }
}

impl EventSink {
    /// Writes each event as one JSON line on stdout and flushes, so the harness sees it at once.
    /// A closed stdout (the harness is gone) is ignored: the process is about to die anyway.
    pub fn stdout() -> Self {
        Self {
            send: Arc::new(|event: Event| {
                // Serialising a plain enum of owned data cannot fail; if it ever did, an empty
                // line is better than a panic in a daemon.
                let line = serde_json::to_string(&event).unwrap_or_default();
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }),
        }
    }

    /// Sends events into an unbounded channel; the receiver sees them in order.
    pub fn channel() -> (Self, std::sync::mpsc::Receiver<Event>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let tx = std::sync::Mutex::new(tx);
        let sink = Self {
            send: Arc::new(move |event| {
                if let Ok(tx) = tx.lock() {
                    let _ = tx.send(event);
                }
            }),
        };
        (sink, rx)
    }

    /// Discards every event.
    pub fn discard() -> Self {
        Self {
            send: Arc::new(|_| {}),
        }
    }

    /// Tells one event.
    pub fn emit(&self, event: Event) {
        (self.send)(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_entries_are_flat_json_with_a_kind_tag() {
        let entry = JournalEntry {
            t_ms: 1500,
            source: "agent-s001".into(),
            source_pid: Some(4242),
            event: Event::AgentResolved {
                server: "s001".into(),
                addrs: vec!["127.1.2.10".parse().expect("ip")],
            },
        };
        let line = serde_json::to_string(&entry).expect("serialize");
        assert_eq!(
            line,
            r#"{"t_ms":1500,"source":"agent-s001","source_pid":4242,"kind":"agent_resolved","server":"s001","addrs":["127.1.2.10"]}"#
        );
        let back: JournalEntry = serde_json::from_str(&line).expect("parse");
        assert_eq!(back, entry);
        assert_eq!(back.event.kind(), EventKind::AgentResolved);
    }

    #[test]
    fn journal_entries_whose_event_has_its_own_pid_read_back() {
        for source_pid in [None, Some(7)] {
            let entry = JournalEntry {
                t_ms: 7,
                source: "harness".into(),
                source_pid,
                event: Event::ProcessStarted {
                    name: "dns-a".into(),
                    role: Role::Dns,
                    server: None,
                    pid: 9140,
                },
            };
            let line = serde_json::to_string(&entry).expect("serialize");
            let back: JournalEntry = serde_json::from_str(&line).expect("parse");
            assert_eq!(back, entry, "{line}");
        }
    }

    #[test]
    fn every_kind_reads_back_from_its_name_and_names_are_unique() {
        let mut names = std::collections::BTreeSet::new();
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.name()), Some(*kind));
            assert!(names.insert(kind.name()), "{kind} is named twice");
        }
        assert_eq!(EventKind::from_name("no_such_kind"), None);
    }

    #[test]
    fn a_phase_is_written_with_the_name_it_says() {
        for phase in [RunPhase::Timeline, RunPhase::Stopping] {
            let event = Event::Phase {
                name: phase,
                detail: String::new(),
            };
            let json = serde_json::to_value(&event).expect("serialize");
            assert_eq!(json["name"], phase.name());
            assert_eq!(json["kind"], "phase");
        }
    }

    #[test]
    fn channel_sink_delivers_events_in_order() {
        let (sink, rx) = EventSink::channel();
        for i in 0..3 {
            sink.emit(Event::RunFinished {
                verdict: format!("v{i}"),
            });
        }
        let got: Vec<_> = rx.try_iter().collect();
        assert_eq!(got.len(), 3);
        assert_eq!(
            got[2],
            Event::RunFinished {
                verdict: "v2".into()
            }
        );
    }
}
