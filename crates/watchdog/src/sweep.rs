//! One sweep: read every watched process's RSS, then run both alarms on the readings.
//!
//! The reading ([`crate::statm`], `/proc`) and the judging ([`Sweeper::sweep`]) are split so that the
//! judging, including PID-reuse handling, is a pure function of its inputs and tested as one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use outage_lab_ebs_events::wire::Target;
use outage_lab_ebs_events::{AlarmKind, Event, ProcessRole, RssSample};
use outage_lab_proto::wire::LauncherReader;

use crate::aggregate::{AggregateAlarm, AggregateConfig};
use crate::leak::{LeakConfig, LeakDetector};
pub(crate) use crate::statm::Reading;

/// A watched process, by what it is rather than by pid: processes on other machines or in other
/// containers may share a pid.
pub(crate) type Key = (String, ProcessRole);

fn key(target: &Target) -> Key {
    (target.server.clone(), target.role)
}

/// One sweep's readings, by process.
#[derive(Debug, Default)]
pub(crate) struct Readings {
    /// What was read. A live target absent here and not in `unknown` is gone.
    pub(crate) read: HashMap<Key, Reading>,
    /// Targets whose reader did not answer this sweep (a launcher out of reach): judged on the
    /// next sweep that reads them, never taken as gone.
    pub(crate) unknown: HashSet<Key>,
}

/// One watched process and the detector that belongs to it.
#[derive(Debug)]
struct Watched {
    target: Target,
    /// Recorded at the first reading; a later reading with a different start time means the
    /// pid was reused by another process.
    start_time: Option<u64>,
    /// The process exited or its pid was reused. It is not sampled again; it is forgotten when
    /// the harness sends a target list without it.
    gone: bool,
    detector: LeakDetector,
}

/// The watchdog's judging state: the watched processes and each server's aggregate alarm.
#[derive(Debug)]
pub(crate) struct Sweeper {
    leak: LeakConfig,
    aggregate: AggregateConfig,
    watched: BTreeMap<Key, Watched>,
    /// By server id.
    aggregates: HashMap<String, AggregateAlarm>,
    /// Each server's storage cache size as last told, when the aggregate counts net of it.
    caches: HashMap<String, u64>,
}

impl Sweeper {
    pub(crate) fn new(leak: LeakConfig, aggregate: AggregateConfig) -> Self {
        Self {
            leak,
            aggregate,
            watched: BTreeMap::new(),
            aggregates: HashMap::new(),
            caches: HashMap::new(),
        }
    }

    /// The storage caches' sizes, by server, for an aggregate alarm net of cache.
    pub(crate) fn set_caches(&mut self, caches: HashMap<String, u64>) {
        self.caches = caches;
    }

    /// Replaces the watched set. A process that stays (same server, role, pid and reader) keeps
    /// its detector and history; anything else starts fresh.
    pub(crate) fn set_targets(&mut self, targets: &[Target]) {
        let mut next = BTreeMap::new();
        for t in targets {
            let kept = (self.watched.remove(&key(t)))
                .filter(|w| w.target.pid == t.pid && w.target.reader == t.reader);
            let watched = match kept {
                Some(mut w) => {
                    w.target = t.clone();
                    w
                }
                None => Watched {
                    target: t.clone(),
                    start_time: None,
                    gone: false,
                    detector: LeakDetector::new(&self.leak),
                },
            };
            next.insert(key(t), watched);
        }
        self.watched = next;
        let servers: Vec<&str> = targets.iter().map(|t| t.server.as_str()).collect();
        self.aggregates.retain(|s, _| servers.contains(&s.as_str()));
    }

    fn live(&self) -> impl Iterator<Item = (&Key, &Target)> {
        (self.watched.iter())
            .filter(|(_, w)| !w.gone)
            .map(|(k, w)| (k, &w.target))
    }

    /// Live targets the watchdog reads itself, by pid.
    pub(crate) fn live_pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = (self.live())
            .filter(|(_, t)| t.reader.is_none())
            .map(|(_, t)| t.pid)
            .collect();
        pids.sort_unstable();
        pids
    }

    /// The live targets read here as a whole process tree.
    pub(crate) fn live_trees(&self) -> Vec<u32> {
        (self.live())
            .filter(|(_, t)| t.reader.is_none() && t.tree)
            .map(|(_, t)| t.pid)
            .collect()
    }

    /// The live targets their launchers read, grouped by launcher URL: each name there and
    /// the target it is.
    pub(crate) fn live_remote(&self) -> BTreeMap<String, Vec<(String, Key)>> {
        let mut by_url: BTreeMap<String, Vec<(String, Key)>> = BTreeMap::new();
        for (k, t) in self.live() {
            if let Some(LauncherReader { url, name }) = &t.reader {
                by_url
                    .entry(url.clone())
                    .or_default()
                    .push((name.clone(), k.clone()));
            }
        }
        by_url
    }

    /// This sweep's readings of the targets read here, from readings by pid.
    pub(crate) fn local_readings(&self, by_pid: &HashMap<u32, Reading>, into: &mut Readings) {
        for (k, t) in self.live().filter(|(_, t)| t.reader.is_none()) {
            if let Some(r) = by_pid.get(&t.pid) {
                into.read.insert(k.clone(), *r);
            }
        }
    }

    /// Judges one sweep's readings taken at `at`: returns one `rss_sweep` event covering the
    /// live targets, followed by any alarms it raised.
    pub(crate) fn sweep(&mut self, readings: &Readings, at: Duration) -> Vec<Event> {
        let (mut samples, mut alarms) = self.sample_live(readings, at);
        alarms.extend(self.judge_aggregates(&samples));
        samples.sort_by(|a, b| (&a.server, a.role, a.pid).cmp(&(&b.server, b.role, b.pid)));
        let mut events = Vec::with_capacity(1 + alarms.len());
        events.push(Event::RssSweep { samples });
        events.extend(alarms);
        events
    }

    /// Samples every live watched process `readings` has an answer for and feeds its leak
    /// detector; marks gone a process that exited or whose pid was reused. Returns the samples
    /// and the leak alarms raised, both in watched order.
    fn sample_live(&mut self, readings: &Readings, at: Duration) -> (Vec<RssSample>, Vec<Event>) {
        let mut samples = Vec::new();
        let mut alarms = Vec::new();
        for (k, w) in &mut self.watched {
            if w.gone || readings.unknown.contains(k) {
                continue;
            }
            let pid = w.target.pid;
            let Some(r) = readings.read.get(k) else {
                tracing::info!(pid, server = %w.target.server, role = %w.target.role, "watched process is gone");
                w.gone = true;
                continue;
            };
            match w.start_time {
                None => w.start_time = Some(r.start_time),
                Some(s) if s != r.start_time => {
                    tracing::info!(pid, server = %w.target.server, "pid reused by another process; no longer watched");
                    w.gone = true;
                    continue;
                }
                Some(_) => {}
            }
            samples.push(RssSample {
                server: w.target.server.clone(),
                role: w.target.role,
                pid,
                rss_bytes: r.rss,
            });
            if let Some(detail) = w.detector.observe(at, r.rss) {
                alarms.push(Event::Alarm {
                    alarm: AlarmKind::Leak,
                    server: w.target.server.clone(),
                    role: Some(w.target.role),
                    pid: Some(pid),
                    detail,
                });
            }
        }
        (samples, alarms)
    }

    /// Feeds each server's aggregate alarm its agent + storage memory, for the servers whose
    /// agent and storage were both sampled; returns the aggregate alarms raised, by server.
    fn judge_aggregates(&mut self, samples: &[RssSample]) -> Vec<Event> {
        let mut alarms = Vec::new();
        for (server, (agent, storage, budget)) in self.per_server(samples) {
            let (Some(agent), Some(storage)) = (agent, storage) else {
                continue;
            };
            let alarm = self
                .aggregates
                .entry(server.to_owned())
                .or_insert_with(|| AggregateAlarm::new(&self.aggregate));
            let cache = (self.aggregate.net_of_cache)
                .then(|| self.caches.get(server).copied())
                .flatten();
            if self.aggregate.net_of_cache && cache.is_none() {
                // Net of a cache not yet told: no judgement rather than a false alarm.
                continue;
            }
            if let Some(detail) = alarm.observe_net(agent.saturating_add(storage), cache, budget) {
                let kind = match self.aggregate.net_of_cache {
                    true => AlarmKind::CacheAwareAggregate,
                    false => AlarmKind::Aggregate,
                };
                alarms.push(Event::Alarm {
                    alarm: kind,
                    server: server.to_owned(),
                    role: None,
                    pid: None,
                    detail,
                });
            }
        }
        alarms
    }

    /// The samples by server: its agent's RSS, its storage's RSS (each if sampled) and its
    /// memory budget.
    fn per_server<'s>(
        &self,
        samples: &'s [RssSample],
    ) -> BTreeMap<&'s str, (Option<u64>, Option<u64>, u64)> {
        let mut per_server: BTreeMap<&str, (Option<u64>, Option<u64>, u64)> = BTreeMap::new();
        for s in samples {
            let budget = (self.watched.get(&(s.server.clone(), s.role)))
                .map_or(0, |w| w.target.budget_bytes);
            let entry = per_server.entry(&s.server).or_insert((None, None, budget));
            match s.role {
                ProcessRole::Agent => entry.0 = Some(s.rss_bytes),
                ProcessRole::Storage => entry.1 = Some(s.rss_bytes),
            }
        }
        per_server
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn target(server: &str, role: ProcessRole, pid: u32) -> Target {
        Target {
            server: server.into(),
            role,
            pid,
            budget_bytes: 48 * MIB,
            stale: false,
            cache_url: None,
            tree: false,
            reader: None,
        }
    }

    fn reading(rss: u64, start_time: u64) -> Reading {
        Reading { rss, start_time }
    }

    /// Sweeps with readings by pid, as the watchdog reads the targets it reads itself.
    fn sweep(s: &mut Sweeper, by_pid: &HashMap<u32, Reading>, at: Duration) -> Vec<Event> {
        let mut readings = Readings::default();
        s.local_readings(by_pid, &mut readings);
        s.sweep(&readings, at)
    }

    fn remote(server: &str, role: ProcessRole, pid: u32, url: &str) -> Target {
        Target {
            reader: Some(LauncherReader {
                url: url.into(),
                name: format!("{role}-{server}"),
            }),
            ..target(server, role, pid)
        }
    }

    #[test]
    fn processes_in_different_containers_may_share_a_pid() {
        let mut s = sweeper();
        s.set_targets(&[
            remote("s000", ProcessRole::Agent, 7, "http://a"),
            remote("s001", ProcessRole::Agent, 7, "http://b"),
        ]);
        let remote = s.live_remote();
        assert_eq!(remote.len(), 2, "one read per launcher: {remote:?}");
        assert!(s.live_pids().is_empty(), "nothing is read here");
        let mut readings = Readings::default();
        readings
            .read
            .insert(("s000".into(), ProcessRole::Agent), reading(3 * MIB, 1));
        readings
            .read
            .insert(("s001".into(), ProcessRole::Agent), reading(5 * MIB, 2));
        let events = s.sweep(&readings, at(0));
        let Event::RssSweep { samples } = &events[0] else {
            panic!("not a sweep: {events:?}")
        };
        let got: Vec<_> = samples
            .iter()
            .map(|s| (s.server.as_str(), s.rss_bytes))
            .collect();
        assert_eq!(got, [("s000", 3 * MIB), ("s001", 5 * MIB)]);
    }

    #[test]
    fn a_launcher_out_of_reach_is_no_proof_that_its_processes_are_gone() {
        let mut s = sweeper();
        s.set_targets(&[remote("s000", ProcessRole::Agent, 7, "http://a")]);
        let k = ("s000".to_owned(), ProcessRole::Agent);
        let unreachable = Readings {
            read: HashMap::new(),
            unknown: HashSet::from([k.clone()]),
        };
        assert_eq!(
            s.sweep(&unreachable, at(0)),
            [Event::RssSweep { samples: vec![] }]
        );
        assert_eq!(s.live_remote().len(), 1, "still watched");
        // An answer without it is.
        s.sweep(&Readings::default(), at(1));
        assert!(s.live_remote().is_empty());
    }

    fn sweeper() -> Sweeper {
        Sweeper::new(LeakConfig::default(), AggregateConfig::default())
    }

    fn at(i: u32) -> Duration {
        Duration::from_millis(250) * i
    }

    fn alarms(events: &[Event]) -> Vec<&Event> {
        events
            .iter()
            .filter(|e| matches!(e, Event::Alarm { .. }))
            .collect()
    }

    #[test]
    fn each_sweep_is_one_event_with_every_live_target() {
        let mut s = sweeper();
        s.set_targets(&[
            target("s001", ProcessRole::Storage, 11),
            target("s000", ProcessRole::Agent, 20),
            target("s000", ProcessRole::Storage, 10),
        ]);
        let readings = HashMap::from([(10, reading(30 * MIB, 1)), (20, reading(3 * MIB, 1))]);
        let events = sweep(&mut s, &readings, at(0));
        assert_eq!(events.len(), 1);
        let Event::RssSweep { samples } = &events[0] else {
            panic!("not a sweep: {events:?}")
        };
        let got: Vec<_> = samples
            .iter()
            .map(|s| (s.server.as_str(), s.pid, s.rss_bytes))
            .collect();
        assert_eq!(got, [("s000", 20, 3 * MIB), ("s000", 10, 30 * MIB)]);
        assert_eq!(s.live_pids(), [10, 20], "pid 11 is gone");
    }

    #[test]
    fn a_reused_pid_is_treated_as_gone() {
        let mut s = sweeper();
        s.set_targets(&[target("s000", ProcessRole::Agent, 20)]);
        sweep(&mut s, &HashMap::from([(20, reading(3 * MIB, 100))]), at(0));
        let events = sweep(
            &mut s,
            &HashMap::from([(20, reading(90 * MIB, 105))]),
            at(1),
        );
        assert_eq!(events, [Event::RssSweep { samples: vec![] }]);
        assert!(s.live_pids().is_empty());
    }

    #[test]
    fn a_leaking_agent_raises_one_leak_alarm_naming_it() {
        let mut s = sweeper();
        s.set_targets(&[target("s004", ProcessRole::Agent, 42)]);
        let mut raised = Vec::new();
        for i in 0..40 {
            let rss = 3 * MIB + u64::from(i) * 256 * 1024; // 1 MiB/s
            let events = sweep(&mut s, &HashMap::from([(42, reading(rss, 7))]), at(i));
            raised.extend(alarms(&events).into_iter().cloned());
        }
        assert_eq!(raised.len(), 1, "{raised:?}");
        let Event::Alarm {
            alarm,
            server,
            role,
            pid,
            ..
        } = &raised[0]
        else {
            unreachable!()
        };
        assert_eq!(
            (*alarm, server.as_str(), *role, *pid),
            (AlarmKind::Leak, "s004", Some(ProcessRole::Agent), Some(42))
        );
    }

    #[test]
    fn a_restarted_agent_with_a_new_pid_gets_a_fresh_detector() {
        let mut s = sweeper();
        s.set_targets(&[target("s004", ProcessRole::Agent, 42)]);
        let mut count = 0;
        for i in 0..40 {
            let rss = 3 * MIB + u64::from(i) * 256 * 1024;
            count += alarms(&sweep(
                &mut s,
                &HashMap::from([(42, reading(rss, 7))]),
                at(i),
            ))
            .len();
        }
        // Restart: same server and role, new pid; it leaks too and is alarmed on again.
        s.set_targets(&[target("s004", ProcessRole::Agent, 43)]);
        for i in 40..80 {
            let rss = 3 * MIB + u64::from(i - 40) * 256 * 1024;
            count += alarms(&sweep(
                &mut s,
                &HashMap::from([(43, reading(rss, 9))]),
                at(i),
            ))
            .len();
        }
        assert_eq!(count, 2);
    }

    #[test]
    fn resending_the_same_targets_keeps_the_history() {
        let mut s = sweeper();
        let targets = [target("s004", ProcessRole::Agent, 42)];
        s.set_targets(&targets);
        let mut count = 0;
        for i in 0..40 {
            // The harness re-sends the full list every time any process (re)starts.
            s.set_targets(&targets);
            let rss = 3 * MIB + u64::from(i) * 256 * 1024;
            count += alarms(&sweep(
                &mut s,
                &HashMap::from([(42, reading(rss, 7))]),
                at(i),
            ))
            .len();
        }
        assert_eq!(count, 1);
    }

    #[test]
    fn the_aggregate_alarm_needs_both_processes_of_a_server() {
        let mut s = sweeper();
        s.set_targets(&[
            target("s000", ProcessRole::Agent, 20),
            target("s000", ProcessRole::Storage, 10),
        ]);
        // Only the storage process readable: no aggregate judgement.
        for i in 0..8 {
            let ev = sweep(&mut s, &HashMap::from([(10, reading(47 * MIB, 1))]), at(i));
            assert!(alarms(&ev).is_empty());
        }
        // Agent 20 is now gone for good, so a fresh sweeper shows the positive case.
        let mut s = sweeper();
        s.set_targets(&[
            target("s000", ProcessRole::Agent, 20),
            target("s000", ProcessRole::Storage, 10),
        ]);
        let both = HashMap::from([(10, reading(40 * MIB, 1)), (20, reading(7 * MIB, 1))]);
        let fired: Vec<_> = (0..6)
            .flat_map(|i| sweep(&mut s, &both, at(i)))
            .filter(|e| {
                matches!(
                    e,
                    Event::Alarm {
                        alarm: AlarmKind::Aggregate,
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(
            fired.len(),
            1,
            "47 of 48 MiB for 6 sweeps fires once: {fired:?}"
        );
    }
}
