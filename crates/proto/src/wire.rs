//! HTTP bodies that cross process boundaries in any incident: the harness to the DNS admin API,
//! the watchdog to a launcher. Every struct denies unknown fields, so a version skew fails loudly.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::HumanDuration;

/// `PUT /records/{name}` on a DNS server's admin API: replace the name's whole A record set.
/// An empty set leaves the name in the zone without an address: a query gets NOERROR and no
/// answer (NODATA), which resolvers remember for the zone's negative-caching TTL.
/// `DELETE /records/{name}` takes the name out of the zone: NXDOMAIN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRecordMsg {
    /// The complete new address set (IPv4 only: the zone serves A records); may be empty.
    pub addrs: Vec<IpAddr>,
}

/// How a DNS server answers the queries for one name while a fault is on: `PUT
/// /faults/{name}` on its admin API turns it on, `DELETE /faults/{name}` off. The records stay
/// as they are; only the answers change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case", deny_unknown_fields)]
pub enum DnsFault {
    /// SERVFAIL, at once: the server cannot answer.
    Servfail,
    /// The answer the zone gives, held back this long (at most a minute).
    Delay {
        /// How long each answer waits.
        by: HumanDuration,
    },
}

/// One change to how a DNS server answers a name, as its admin API makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsChange {
    /// The name's whole address set (empty: NODATA).
    Set(Vec<IpAddr>),
    /// The name out of the zone (NXDOMAIN).
    Remove,
    /// A fault on.
    Fault(DnsFault),
    /// The fault off.
    Unfault,
}

impl DnsChange {
    /// The admin API request that makes it for `name`: the method, the path and the JSON body.
    pub fn request(&self, name: &str) -> (&'static str, String, Option<String>) {
        let records = format!("/records/{name}");
        let faults = format!("/faults/{name}");
        let json = |body: Result<String, serde_json::Error>| body.ok();
        match self {
            Self::Set(addrs) => {
                let body = SetRecordMsg {
                    addrs: addrs.clone(),
                };
                ("PUT", records, json(serde_json::to_string(&body)))
            }
            Self::Remove => ("DELETE", records, None),
            Self::Fault(fault) => ("PUT", faults, json(serde_json::to_string(fault))),
            Self::Unfault => ("DELETE", faults, None),
        }
    }
}

/// `GET /faults` on a DNS server's admin API (also the answer to a `PUT` or `DELETE` on one):
/// every fault on, by fully qualified name.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsMsg {
    /// The faults, by name.
    pub faults: BTreeMap<String, DnsFault>,
}

/// `GET /records` on a DNS server's admin API (also the answer to a `PUT`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsMsg {
    /// The zone's SOA serial.
    pub serial: u32,
    /// Every A record set, by fully qualified name.
    pub records: BTreeMap<String, Vec<IpAddr>>,
}

/// Where the watchdog asks for a process's memory when the launcher that started it reads it:
/// `GET {url}/memory` answers a [`ProcessMemory`] for each of that launcher's children by name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LauncherReader {
    /// The launcher's base URL (`http://10.0.1.7:7000`).
    pub url: String,
    /// The process's name there (`agent-s03`).
    pub name: String,
}

/// The kernel's accounting of one process, read by the launcher that started it
/// (`GET /memory` answers these by process name). The watchdog judges only numbers a launcher
/// read from `/proc`, never what a role says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessMemory {
    /// Resident bytes (`/proc/PID/statm`); for an external agent, of its whole process tree.
    pub rss_bytes: u64,
    /// Field 22 of `/proc/PID/stat`: a different value means the pid names another process.
    pub start_time: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_dns_change_is_one_admin_request() {
        let fault = DnsChange::Fault(DnsFault::Delay {
            by: HumanDuration::millis(1500),
        });
        let (method, path, body) = fault.request("collector");
        assert_eq!((method, path.as_str()), ("PUT", "/faults/collector"));
        assert_eq!(body.as_deref(), Some(r#"{"answer":"delay","by":"1500ms"}"#));
        let empty = DnsChange::Set(vec![]).request("collector");
        assert_eq!(empty.2.as_deref(), Some(r#"{"addrs":[]}"#));
        assert_eq!(DnsChange::Remove.request("x").0, "DELETE");
        assert_eq!(DnsChange::Unfault.request("x").1, "/faults/x");
    }
}
