//! Turning a journal into the time series the report draws. Pure functions of the entries (and
//! of `report.json`, which says which servers were stale), so they are tested on synthetic runs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use outage_lab_ebs_events::{AlarmKind, Event, JournalEntry, ProcessRole};
use outage_lab_proto::report::Report;

pub use outage_lab_engine::plot::{Phases, decimate, phases};

/// Most points kept per drawn line. At 200 servers (400 memory lines) this keeps the page at
/// about a megabyte; 300 points are more than the 850 pixels a line spans can show apart.
pub const MAX_POINTS: usize = 300;

/// Which group a memory line belongs to: the three colours of the memory plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Group {
    /// Storage processes (their memory is the block cache, which churns).
    Storage,
    /// Agents behind a DNS server that got the collector update.
    FreshAgent,
    /// Agents behind a DNS server that missed it: these leak.
    StaleAgent,
}

/// One process's resident memory over the run (across restarts of an agent).
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryLine {
    /// Server id.
    pub server: String,
    /// Colour group.
    pub group: Group,
    /// (t_ms, bytes), in time order.
    pub points: Vec<(u64, f64)>,
}

/// Ids of the servers behind a DNS server that missed the update.
fn stale_ids(report: &Report) -> BTreeSet<&str> {
    (report.servers.iter())
        .filter(|s| s.stale)
        .map(|s| s.id.as_str())
        .collect()
}

/// Resident memory of every watched process, from the watchdog's `rss_sweep` events.
pub fn memory_lines(entries: &[JournalEntry], report: &Report) -> Vec<MemoryLine> {
    let stale = stale_ids(report);
    let mut lines: BTreeMap<(Group, String), Vec<(u64, f64)>> = BTreeMap::new();
    for e in entries {
        if let Event::RssSweep { samples } = &e.event {
            for s in samples {
                let group = match s.role {
                    ProcessRole::Storage => Group::Storage,
                    ProcessRole::Agent if stale.contains(s.server.as_str()) => Group::StaleAgent,
                    ProcessRole::Agent => Group::FreshAgent,
                };
                lines
                    .entry((group, s.server.clone()))
                    .or_default()
                    .push((e.t_ms, s.rss_bytes as f64));
            }
        }
    }
    lines
        .into_iter()
        .map(|((group, server), points)| MemoryLine {
            server,
            group,
            points: decimate(&points, MAX_POINTS),
        })
        .collect()
}

/// What one DNS server answered for the collector name, over time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsTrack {
    /// DNS server name (`dns-a`).
    pub name: String,
    /// (from_ms, answer); the answer holds until the next change. The first answer is what its
    /// agents first resolved (the journal does not carry a DNS server's initial zone).
    pub answers: Vec<(u64, Vec<IpAddr>)>,
    /// Agents resolving through it.
    pub agents: usize,
    /// Whether it missed the collector update (its agents are the stale ones).
    pub stale: bool,
}

/// The collector answer of every DNS server over the run.
pub fn dns_tracks(entries: &[JournalEntry], report: &Report) -> Vec<DnsTrack> {
    let mut tracks: BTreeMap<String, DnsTrack> = BTreeMap::new();
    let mut server_dns: BTreeMap<&str, &str> = BTreeMap::new();
    for s in &report.servers {
        server_dns.insert(&s.id, &s.dns_server);
        let t = tracks
            .entry(s.dns_server.clone())
            .or_insert_with(|| DnsTrack {
                name: s.dns_server.clone(),
                answers: Vec::new(),
                agents: 0,
                stale: false,
            });
        t.agents += 1;
        t.stale |= s.stale;
    }
    for e in entries {
        match &e.event {
            Event::AgentResolved { server, addrs } => {
                if let Some(t) = server_dns
                    .get(server.as_str())
                    .and_then(|d| tracks.get_mut(*d))
                    && t.answers.is_empty()
                {
                    // Its first agent's first answer stands for what the server answered from
                    // the start.
                    t.answers.push((0, addrs.clone()));
                }
            }
            Event::DnsRecordChanged { name, addrs, .. }
                if name.starts_with("collector.") || name == "collector" =>
            {
                let t = tracks.entry(e.source.clone()).or_insert_with(|| DnsTrack {
                    name: e.source.clone(),
                    answers: Vec::new(),
                    agents: 0,
                    stale: false,
                });
                if t.answers.last().map(|(_, a)| a) != Some(addrs) {
                    t.answers.push((e.t_ms, addrs.clone()));
                }
            }
            _ => {}
        }
    }
    tracks.into_values().collect()
}

/// One alarm as drawn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmMark {
    /// When, ms.
    pub t_ms: u64,
    /// Which alarm.
    pub kind: AlarmKind,
    /// Agent, storage, or `None` for a server's aggregate.
    pub role: Option<ProcessRole>,
    /// Server.
    pub server: String,
    /// Whether that server was stale.
    pub stale: bool,
    /// The numbers that made it fire.
    pub detail: String,
}

/// Every `alarm` event.
pub fn alarms(entries: &[JournalEntry], report: &Report) -> Vec<AlarmMark> {
    let stale = stale_ids(report);
    entries
        .iter()
        .filter_map(|e| match &e.event {
            Event::Alarm {
                alarm,
                server,
                role,
                detail,
                ..
            } => Some(AlarmMark {
                t_ms: e.t_ms,
                kind: *alarm,
                role: *role,
                server: server.clone(),
                stale: stale.contains(server.as_str()),
                detail: detail.clone(),
            }),
            _ => None,
        })
        .collect()
}

/// Volume counts over time, from `control_stats`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VolumeSeries {
    /// Volumes placed (the largest total seen).
    pub total: u64,
    /// (t_ms, stuck volumes).
    pub stuck: Vec<(u64, f64)>,
    /// (t_ms, degraded volumes).
    pub degraded: Vec<(u64, f64)>,
}

/// Stuck and degraded volumes over time; empty when the journal has no `control_stats`.
pub fn volumes(entries: &[JournalEntry]) -> VolumeSeries {
    let mut v = VolumeSeries::default();
    for e in entries {
        if let Event::ControlStats {
            total,
            stuck,
            degraded,
            ..
        } = &e.event
        {
            v.total = v.total.max(*total);
            v.stuck.push((e.t_ms, *stuck as f64));
            v.degraded.push((e.t_ms, *degraded as f64));
        }
    }
    v.stuck = decimate(&v.stuck, MAX_POINTS);
    v.degraded = decimate(&v.degraded, MAX_POINTS);
    v
}

/// The customer error rate (percent of requests in each window) and p99 latency over time, from
/// `load_stats`; windows without requests are left out.
pub fn error_rate(entries: &[JournalEntry]) -> Vec<(u64, f64)> {
    let points: Vec<(u64, f64)> = entries
        .iter()
        .filter_map(|e| match &e.event {
            Event::LoadStats {
                requests, errors, ..
            } if *requests > 0 => Some((e.t_ms, *errors as f64 * 100.0 / *requests as f64)),
            _ => None,
        })
        .collect();
    decimate(&points, MAX_POINTS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimation_keeps_short_series_whole() {
        let pts: Vec<(u64, f64)> = (0..10).map(|i| (i * 100, i as f64)).collect();
        assert_eq!(decimate(&pts, 300), pts);
    }

    #[test]
    fn decimation_bounds_the_points_and_keeps_the_peak_and_the_drop() {
        // A leak that climbs for 9000 samples, then a restart drops it to the floor.
        let mut pts: Vec<(u64, f64)> = (0..9000).map(|i| (i, 10.0 + i as f64)).collect();
        pts.extend((9000..10_000).map(|i| (i, 10.0)));
        let kept = decimate(&pts, 300);
        assert!(kept.len() <= 300, "{} points kept", kept.len());
        let peak = kept.iter().map(|p| p.1).fold(f64::MIN, f64::max);
        assert_eq!(peak, 9009.0, "the peak just before the restart survives");
        assert_eq!(kept.last().map(|p| p.1), Some(10.0), "the drop survives");
        assert!(kept.windows(2).all(|w| w[0].0 <= w[1].0), "time order kept");
    }
}
