//! HTTP bodies that cross process boundaries: agent to collector, harness to the DNS admin API,
//! harness to the watchdog. Every struct denies unknown fields, so a version skew fails loudly.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::event::ProcessRole;

/// `POST /report` on a collector: one fleet-maintenance report from an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportMsg {
    /// Storage server the agent runs on.
    pub server: String,
    /// Sequence number of this report within the agent's life.
    pub seq: u64,
    /// Reports the agent still holds for retry (including this one's predecessors).
    pub pending: u64,
}

/// `GET /stats` on a collector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorStatsMsg {
    /// Reports accepted since start.
    pub total_reports: u64,
    /// Reports accepted per storage server.
    pub per_server: BTreeMap<String, u64>,
}

/// `PUT /records/{name}` on a DNS server's admin API: replace the name's whole A record set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRecordMsg {
    /// The complete new address set (IPv4 only: the zone serves A records).
    pub addrs: Vec<IpAddr>,
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

/// One process the watchdog should watch (`PUT /targets` takes the complete list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Storage server the process belongs to.
    pub server: String,
    /// Agent or storage.
    pub role: ProcessRole,
    /// Process id.
    pub pid: u32,
    /// The server's memory budget (storage and agent together), for the aggregate alarm.
    pub budget_bytes: u64,
}
