//! `endpoints.json` in the run directory: every URL a run serves, so a person or a script knows
//! what to scrape (`/metrics` of every process) and where the admin APIs are, without reading
//! logs. Written as soon as the fleet is up and rewritten whenever a process comes up on a new
//! address (the replacement collector); restarted agents keep their metrics address.
//!
//! The file is a JSON list of `{name, role, url, kind}`; `kind` is `metrics`, `admin` (an API
//! that changes state), `health` or `stats` (read-only JSON), or `dns` (a `dns://` server).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use outage_lab_ebs_events::Role;
use serde::Serialize;

use crate::names::ProcessName;
use outage_lab_engine::supervisor::Started;

/// The file's name in the run directory.
pub const FILE: &str = "endpoints.json";

/// One URL of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// The process's name in the run (`dns-a`, `agent-s003`, `watchdog`, ...).
    pub name: String,
    /// Its role (`dns`, `collector`, `agent`, `storage`, `watchdog`).
    pub role: String,
    /// Where it serves.
    pub url: String,
    /// What the URL is for: `metrics`, `admin`, `health`, `stats`, `dns`, or for `run --serve`
    /// `live` (the page) and `events` (its server-sent events).
    pub kind: &'static str,
}

/// Every endpoint learned so far, by process name (a process that comes up again replaces its
/// old entries).
#[derive(Debug, Default)]
pub struct Endpoints {
    by_process: BTreeMap<String, Vec<Endpoint>>,
}

impl Endpoints {
    /// Records what a process announced in its readiness line.
    pub fn learn(&mut self, process: &ProcessName, started: &Started) {
        let name = process.to_string();
        let role = process.role().as_str();
        let entry = |url: String, kind| Endpoint {
            name: name.clone(),
            role: role.to_owned(),
            url,
            kind,
        };
        let mut list = Vec::new();
        for (key, addr) in &started.addrs {
            let http = |path: &str| format!("http://{addr}{path}");
            match (process.role(), key.as_str()) {
                (Role::Dns, "dns") => list.push(entry(format!("dns://{addr}"), "dns")),
                (Role::Dns, "admin") => {
                    list.push(entry(http("/metrics"), "metrics"));
                    list.push(entry(http("/records"), "admin"));
                }
                (Role::Collector, "http") => {
                    list.push(entry(http("/metrics"), "metrics"));
                    list.push(entry(http("/stats"), "stats"));
                }
                (Role::Control, "http") => {
                    list.push(entry(http("/metrics"), "metrics"));
                    list.push(entry(http("/volumes"), "admin"));
                    list.push(entry(http("/health"), "health"));
                }
                (Role::Storage, "http") => {
                    list.push(entry(http("/metrics"), "metrics"));
                    list.push(entry(http("/health"), "health"));
                }
                (Role::Watchdog, "admin") => {
                    list.push(entry(http("/metrics"), "metrics"));
                    list.push(entry(http("/targets"), "admin"));
                    list.push(entry(http("/health"), "health"));
                }
                (_, "metrics") => list.push(entry(http("/metrics"), "metrics")),
                _ => {}
            }
        }
        self.by_process.insert(name, list);
    }

    /// Lists the live view (`run --serve`): the page and its event stream.
    pub fn add_live_view(&mut self, url: &str) {
        let base = url.trim_end_matches('/');
        let entry = |url: String, kind| Endpoint {
            name: "live-view".to_owned(),
            role: "harness".to_owned(),
            url,
            kind,
        };
        self.by_process.insert(
            "live-view".to_owned(),
            vec![
                entry(format!("{base}/"), "live"),
                entry(format!("{base}/events"), "events"),
            ],
        );
    }

    /// Drops a process that is gone for good (the failed collector).
    pub fn forget(&mut self, process: &ProcessName) {
        self.by_process.remove(&process.to_string());
    }

    /// The address a process's `/metrics` was on, so a restarted agent can take it again and a
    /// scraper's target list stays true.
    pub fn metrics_addr(&self, process: &ProcessName) -> Option<SocketAddr> {
        self.url(process, "metrics")?
            .strip_prefix("http://")?
            .strip_suffix("/metrics")?
            .parse()
            .ok()
    }

    /// A process's URL of `kind` (`metrics`, `stats`, ...), if it has one.
    pub fn url(&self, process: &ProcessName, kind: &str) -> Option<&str> {
        (self.by_process.get(&process.to_string())?.iter())
            .find(|e| e.kind == kind)
            .map(|e| e.url.as_str())
    }

    /// Writes `endpoints.json` into `run_dir` (through a temporary file, so a reader never sees
    /// half a list).
    pub fn write(&self, run_dir: &Path) -> std::io::Result<()> {
        let all: Vec<&Endpoint> = self.by_process.values().flatten().collect();
        let json = serde_json::to_string_pretty(&all).map_err(std::io::Error::other)?;
        let tmp = run_dir.join(format!("{FILE}.tmp"));
        std::fs::write(&tmp, json + "\n")?;
        std::fs::rename(&tmp, run_dir.join(FILE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(addrs: &[(&str, &str)]) -> Started {
        Started {
            pid: 1,
            addrs: addrs
                .iter()
                .map(|(k, a)| ((*k).to_owned(), a.parse().expect("addr")))
                .collect(),
        }
    }

    #[test]
    fn the_live_view_is_listed_with_its_event_stream() {
        let mut e = Endpoints::default();
        e.add_live_view("http://127.0.0.1:4100/");
        let urls: Vec<(&str, &str)> = e
            .by_process
            .values()
            .flatten()
            .map(|x| (x.kind, x.url.as_str()))
            .collect();
        assert_eq!(
            urls,
            vec![
                ("live", "http://127.0.0.1:4100/"),
                ("events", "http://127.0.0.1:4100/events")
            ]
        );
    }

    #[test]
    fn a_dns_server_lists_its_metrics_admin_and_dns_urls_and_an_agent_keeps_its_metrics_address() {
        let mut e = Endpoints::default();
        e.learn(
            &ProcessName::Dns("dns-a".into()),
            &started(&[("dns", "127.9.0.2:5300"), ("admin", "127.9.0.2:8000")]),
        );
        let agent = ProcessName::Agent("s000".into());
        e.learn(&agent, &started(&[("metrics", "127.9.1.1:9100")]));
        let urls: Vec<(&str, &str)> = e
            .by_process
            .values()
            .flatten()
            .map(|x| (x.url.as_str(), x.kind))
            .collect();
        assert_eq!(
            urls,
            [
                ("http://127.9.1.1:9100/metrics", "metrics"),
                ("http://127.9.0.2:8000/metrics", "metrics"),
                ("http://127.9.0.2:8000/records", "admin"),
                ("dns://127.9.0.2:5300", "dns"),
            ]
        );
        assert_eq!(
            e.metrics_addr(&agent),
            Some("127.9.1.1:9100".parse().expect("addr"))
        );
    }
}
