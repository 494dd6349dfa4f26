//! What the harness learns during a run, folded from journal events.
//!
//! [`RunState::apply`] is a pure function of the event stream, so the same state can be rebuilt
//! from `journal.jsonl` after the fact and tested with synthetic events.

use std::collections::BTreeMap;
use std::net::IpAddr;

use outage_lab_ebs_events::{
    AlarmKind, Event, FailoverOutcome, JournalEntry, ProcessRole, Role, RssSample, VolumeState,
};
use outage_lab_proto::RunPhase;
use outage_lab_proto::wire::DnsChange;

use crate::kinds::FixName;
use crate::kinds::StepKind;
use crate::names::{Generation, ProcessName};

/// One life of an agent process (a restart starts a new one).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Incarnation {
    /// Its pid.
    pub pid: u32,
    /// When it started (ms since run start).
    pub started_ms: u64,
    /// Every RSS sample: (t_ms, bytes).
    pub rss: Vec<(u64, u64)>,
    /// Latest counters it reported.
    pub ok_reports: u64,
    /// Latest counters it reported.
    pub failed_reports: u64,
    /// Latest retained bytes it reported.
    pub retained_bytes: u64,
}

/// Everything known about one storage server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerState {
    /// Agent lives, in start order.
    pub agents: Vec<Incarnation>,
    /// The storage process's pid.
    pub storage_pid: Option<u32>,
    /// Storage RSS samples: (t_ms, bytes).
    pub storage_rss: Vec<(u64, u64)>,
    /// Storage cache sizes reported: (t_ms, bytes).
    pub cache: Vec<(u64, u64)>,
    /// When storage first reported degraded.
    pub degraded_at_ms: Option<u64>,
    /// Every address set the agent resolved, with when: (t_ms, addrs).
    pub resolved: Vec<(u64, Vec<IpAddr>)>,
    /// The replacement collector's count of this server's reports: (t_ms, reports so far).
    pub reports_to_new_collector: Vec<(u64, u64)>,
    /// First leak alarm on the agent.
    pub leak_at_ms: Option<u64>,
    /// First leak alarm on the storage process.
    pub storage_leak_at_ms: Option<u64>,
    /// First aggregate alarm.
    pub aggregate_at_ms: Option<u64>,
    /// When control first counted it as not serving I/O.
    pub unhealthy_at_ms: Option<u64>,
    /// When one of the volumes it held first became stuck.
    pub first_stuck_at_ms: Option<u64>,
    /// Servers whose failed volumes it received a new mirror of.
    pub took_failover_from: std::collections::BTreeSet<String>,
    /// The other servers of the volumes it held when they got stuck (the failed replicas whose
    /// load it was left with).
    pub stuck_alongside: std::collections::BTreeSet<String>,
}

impl ServerState {
    /// The agent's RSS samples over all lives, in time order.
    pub fn agent_rss(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.agents.iter().flat_map(|a| a.rss.iter().copied())
    }

    /// Failed reports summed over lives.
    pub fn failed_reports(&self) -> u64 {
        self.agents.iter().map(|a| a.failed_reports).sum()
    }

    /// Accepted reports summed over lives.
    pub fn ok_reports(&self) -> u64 {
        self.agents.iter().map(|a| a.ok_reports).sum()
    }

    /// The last agent RSS sample taken before `t_ms` (the baseline before a fault).
    pub fn agent_rss_before(&self, t_ms: u64) -> Option<u64> {
        self.agent_rss()
            .take_while(|(t, _)| *t < t_ms)
            .last()
            .map(|(_, b)| b)
    }

    /// The replacement collector's count of this server's reports as last told by `t_ms`.
    pub fn reports_to_new_collector_by(&self, t_ms: u64) -> u64 {
        (self.reports_to_new_collector.iter())
            .take_while(|(t, _)| *t <= t_ms)
            .last()
            .map_or(0, |(_, n)| *n)
    }

    /// The address set the agent held at `t_ms` (the last one resolved at or before it).
    pub fn resolved_at(&self, t_ms: u64) -> Option<&[IpAddr]> {
        self.resolved
            .iter()
            .take_while(|(t, _)| *t <= t_ms)
            .last()
            .map(|(_, a)| a.as_slice())
    }

    /// Highest agent RSS in `[from_ms, to_ms)`.
    pub fn agent_peak_between(&self, from_ms: u64, to_ms: u64) -> Option<u64> {
        self.agent_rss()
            .filter(|(t, _)| *t >= from_ms && *t < to_ms)
            .map(|(_, b)| b)
            .max()
    }
}

/// A process exit the harness did not ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crash {
    /// Process name.
    pub name: String,
    /// When.
    pub t_ms: u64,
    /// How it ended.
    pub status: String,
}

/// The whole run as the harness saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunState {
    /// Per storage server, by id.
    pub servers: BTreeMap<String, ServerState>,
    /// When each timeline step was injected: (kind, t_ms), in order.
    pub steps: Vec<(StepKind, u64)>,
    /// Processes that exited without being asked to (and no fix explains why).
    pub crashes: Vec<Crash>,
    /// What the fixes did: (fix, t_ms, detail), in order.
    pub fix_actions: Vec<(FixName, u64, String)>,
    /// Any leak alarm on a process the harness does not know (should never happen).
    pub first_leak_alarm_ms: Option<u64>,
    /// When each kind of alarm first fired, on any server.
    pub first_alarm_ms: BTreeMap<AlarmKind, u64>,
    /// When the timeline started (the fleet was up).
    pub fleet_up_ms: Option<u64>,
    /// The volumes.
    pub volumes: VolumesState,
    /// Each DNS server's answers for the collector's name so far, by address, as told:
    /// (t_ms, answers), by DNS server name.
    pub dns_answers: BTreeMap<String, Vec<(u64, Answers)>>,
    /// Each change a DNS server told to how it answers a name: (t_ms, name, change), by DNS
    /// server name.
    pub dns_changes: BTreeMap<String, Vec<(u64, String, DnsChange)>>,
}

/// A DNS server's answers for the collector's name so far, by address answered.
pub type Answers = BTreeMap<IpAddr, u64>;

/// Volumes as the journal tells them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VolumesState {
    /// Every volume's current state.
    pub states: BTreeMap<String, VolumeState>,
    /// Volumes stuck right now.
    pub stuck_now: u64,
    /// Most volumes stuck at once, and when that was first reached.
    pub stuck_peak: u64,
    /// When `stuck_peak` was first reached.
    pub stuck_peak_at_ms: Option<u64>,
    /// When every volume was last seen returning to healthy after some were not; cleared when
    /// one falls out of healthy again.
    pub recovered_at_ms: Option<u64>,
    /// Whether any volume ever left healthy.
    pub ever_unhealthy: bool,
    /// Failover counters from control's last stats.
    pub failovers_attempted: u64,
    /// Failovers that found no capacity, from control's last stats.
    pub failovers_without_capacity: u64,
    /// Stuck volumes over time: (t_ms, count), one point per change.
    pub stuck_series: Vec<(u64, u64)>,
    /// When each volume came out of stuck (served I/O again), every time it did.
    pub unstuck_at_ms: BTreeMap<String, Vec<u64>>,
}

impl RunState {
    /// How many times DNS server `dns` answered `addr` for the collector in `(from_ms, to_ms]`.
    pub fn dns_answered_between(&self, dns: &str, addr: IpAddr, from_ms: u64, to_ms: u64) -> u64 {
        let told = self
            .dns_answers
            .get(dns)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let count_at = |t_ms: u64| {
            (told.iter().take_while(|(t, _)| *t <= t_ms).last())
                .and_then(|(_, answers)| answers.get(&addr).copied())
                .unwrap_or(0)
        };
        count_at(to_ms).saturating_sub(count_at(from_ms))
    }

    /// A state with the given server ids known up front.
    pub fn with_servers<'a>(ids: impl IntoIterator<Item = &'a str>) -> Self {
        Self {
            servers: ids
                .into_iter()
                .map(|id| (id.to_owned(), ServerState::default()))
                .collect(),
            ..Self::default()
        }
    }

    /// Folds one journal entry in.
    pub fn apply(&mut self, entry: &JournalEntry) {
        let t = entry.t_ms;
        match &entry.event {
            Event::ProcessStarted {
                role,
                server: Some(server),
                pid,
                ..
            } => self.process_started(t, Role::from_name(role), server, *pid),
            Event::ProcessExited {
                name,
                status,
                expected: false,
                ..
            } => self.crashes.push(Crash {
                name: name.clone(),
                t_ms: t,
                status: status.clone(),
            }),
            Event::RssSweep { samples } => self.rss_sweep(t, samples),
            Event::AgentStats { .. } => self.agent_stats(entry),
            Event::AgentResolved { server, addrs } => {
                self.server(server).resolved.push((t, addrs.clone()));
            }
            Event::DnsAnswers { answers, .. } => {
                let told = self.dns_answers.entry(entry.source.clone()).or_default();
                told.push((t, answers.clone()));
            }
            Event::DnsRecordChanged { name, addrs, .. } => {
                self.dns_changed(entry, name, DnsChange::Set(addrs.clone()));
            }
            Event::DnsRecordRemoved { name, .. } => {
                self.dns_changed(entry, name, DnsChange::Remove)
            }
            Event::DnsFaultChanged { name, fault } => {
                let change = fault.map_or(DnsChange::Unfault, DnsChange::Fault);
                self.dns_changed(entry, name, change);
            }
            Event::CollectorStats { per_server, .. }
                if entry.source == ProcessName::Collector(Generation::New).to_string() =>
            {
                for (server, reports) in per_server {
                    (self.server(server).reports_to_new_collector).push((t, *reports));
                }
            }
            Event::StorageStats {
                server,
                cache_bytes,
                degraded,
                ..
            } => {
                let state = self.server(server);
                state.cache.push((t, *cache_bytes));
                if *degraded && state.degraded_at_ms.is_none() {
                    state.degraded_at_ms = Some(t);
                }
            }
            Event::Alarm {
                alarm,
                server,
                role,
                ..
            } => self.alarm(t, *alarm, server, *role),
            _ => self.apply_volumes_and_steps(t, &entry.event),
        }
    }

    /// Control's view of the volumes, and the harness's own steps and phases.
    fn apply_volumes_and_steps(&mut self, t: u64, event: &Event) {
        match event {
            Event::ServerHealth {
                server,
                healthy: false,
                ..
            } => {
                self.server(server).unhealthy_at_ms.get_or_insert(t);
            }
            Event::VolumeChanged {
                volume,
                state,
                replicas,
                ..
            } => {
                if *state == VolumeState::Stuck {
                    for r in replicas {
                        let server = self.server(r);
                        server.first_stuck_at_ms.get_or_insert(t);
                        let others = replicas.iter().filter(|o| *o != r).cloned();
                        server.stuck_alongside.extend(others);
                    }
                }
                self.volume_changed(t, volume, *state);
            }
            Event::Failover {
                from,
                to: Some(to),
                outcome: FailoverOutcome::Remirrored,
                ..
            } if from != to => {
                let from = from.clone();
                self.server(to).took_failover_from.insert(from);
            }
            Event::ControlStats {
                failovers_attempted,
                failovers_without_capacity,
                ..
            } => {
                self.volumes.failovers_attempted = *failovers_attempted;
                self.volumes.failovers_without_capacity = *failovers_without_capacity;
            }
            Event::FixApplied {
                fix,
                process,
                detail,
                ..
            } => {
                // A process the kernel killed at the limit a fix set, and the fix restarted,
                // did what the fix is for: it is no crash.
                // A name this build does not know (a newer journal) is no fix it can count.
                let Some(fix) = FixName::from_name(fix) else {
                    return;
                };
                let handled = (fix == FixName::AgentMemoryLimit)
                    .then(|| (self.crashes.iter()).rposition(|c| Some(&c.name) == process.as_ref()))
                    .flatten();
                if let Some(i) = handled {
                    self.crashes.remove(i);
                }
                self.fix_actions.push((fix, t, detail.clone()));
            }
            // The journal names steps as the scenario does; a name this build does not know
            // (a journal from a newer outage-lab) is not a step it can reason about.
            Event::FaultInjected { action, .. } => {
                if let Some(kind) = StepKind::from_name(action) {
                    self.steps.push((kind, t));
                }
            }
            Event::Phase {
                name: RunPhase::Timeline,
                ..
            } => {
                self.fleet_up_ms.get_or_insert(t);
            }
            _ => {}
        }
    }

    fn dns_changed(&mut self, entry: &JournalEntry, name: &str, change: DnsChange) {
        let told = self.dns_changes.entry(entry.source.clone()).or_default();
        told.push((entry.t_ms, name.to_owned(), change));
    }

    fn process_started(&mut self, t: u64, role: Option<Role>, server: &str, pid: u32) {
        match role {
            Some(Role::Agent) => self.server(server).agents.push(Incarnation {
                pid,
                started_ms: t,
                ..Incarnation::default()
            }),
            Some(Role::Storage) => self.server(server).storage_pid = Some(pid),
            _ => {}
        }
    }

    fn rss_sweep(&mut self, t: u64, samples: &[RssSample]) {
        for s in samples {
            let server = self.server(&s.server);
            match s.role {
                ProcessRole::Agent => {
                    // A sample belongs to the life with that pid (a restart starts a new one).
                    if let Some(life) = server.agents.iter_mut().rev().find(|a| a.pid == s.pid) {
                        life.rss.push((t, s.rss_bytes));
                    }
                }
                ProcessRole::Storage => server.storage_rss.push((t, s.rss_bytes)),
            }
        }
    }

    fn agent_stats(&mut self, entry: &JournalEntry) {
        let Event::AgentStats {
            server,
            ok_reports,
            failed_reports,
            retained_bytes,
            ..
        } = &entry.event
        else {
            return;
        };
        let state = self.server(server);
        let life = match entry.source_pid {
            Some(pid) => state.agents.iter_mut().rev().find(|a| a.pid == pid),
            None => state.agents.last_mut(),
        };
        if let Some(life) = life {
            life.ok_reports = *ok_reports;
            life.failed_reports = *failed_reports;
            life.retained_bytes = *retained_bytes;
        }
    }

    fn alarm(&mut self, t: u64, alarm: AlarmKind, server: &str, role: Option<ProcessRole>) {
        let state = self.server(server);
        let slot = match (alarm, role) {
            (AlarmKind::Leak, Some(ProcessRole::Agent)) => &mut state.leak_at_ms,
            (AlarmKind::Leak, _) => &mut state.storage_leak_at_ms,
            (AlarmKind::Aggregate | AlarmKind::CacheAwareAggregate, _) => {
                &mut state.aggregate_at_ms
            }
        };
        slot.get_or_insert(t);
        self.first_alarm_ms.entry(alarm).or_insert(t);
        if alarm == AlarmKind::Leak {
            self.first_leak_alarm_ms.get_or_insert(t);
        }
    }

    fn volume_changed(&mut self, t: u64, volume: &str, state: VolumeState) {
        let v = &mut self.volumes;
        let old = v.states.insert(volume.to_owned(), state);
        let was_stuck = old == Some(VolumeState::Stuck);
        let is_stuck = state == VolumeState::Stuck;
        if is_stuck && !was_stuck {
            v.stuck_now += 1;
        } else if was_stuck && !is_stuck {
            v.stuck_now = v.stuck_now.saturating_sub(1);
            v.unstuck_at_ms
                .entry(volume.to_owned())
                .or_default()
                .push(t);
        }
        if is_stuck != was_stuck {
            v.stuck_series.push((t, v.stuck_now));
        }
        if v.stuck_now > v.stuck_peak {
            v.stuck_peak = v.stuck_now;
            v.stuck_peak_at_ms = Some(t);
        }
        if state != VolumeState::Healthy {
            v.ever_unhealthy = true;
            v.recovered_at_ms = None;
        } else if v.ever_unhealthy && v.states.values().all(|s| *s == VolumeState::Healthy) {
            v.recovered_at_ms = Some(t);
        }
    }

    fn server(&mut self, id: &str) -> &mut ServerState {
        self.servers.entry(id.to_owned()).or_default()
    }

    /// When the first step was injected, if any.
    pub fn first_injected_ms(&self) -> Option<u64> {
        self.steps.first().map(|(_, t)| *t)
    }

    /// When the last step was injected, if any.
    pub fn last_injected_ms(&self) -> Option<u64> {
        self.steps.last().map(|(_, t)| *t)
    }

    /// When a step of this kind was first injected.
    pub fn injected_at(&self, kind: StepKind) -> Option<u64> {
        (self.steps.iter())
            .find(|(k, _)| *k == kind)
            .map(|(_, t)| *t)
    }

    /// When the earliest aggregate alarm fired on any server.
    pub fn first_aggregate_alarm_ms(&self) -> Option<u64> {
        self.servers
            .values()
            .filter_map(|s| s.aggregate_at_ms)
            .min()
    }
}
