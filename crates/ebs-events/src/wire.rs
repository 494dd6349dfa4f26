//! The 2012 fleet's HTTP bodies: agent to collector, harness to the watchdog, control to the
//! storage servers. Every struct denies unknown fields, so a version skew fails loudly.

use std::collections::BTreeMap;

use outage_lab_proto::wire::LauncherReader;
use serde::{Deserialize, Serialize};

use crate::{ProcessRole, VolumeState};

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
    /// Whether the server's agent resolves through a DNS server the update missed. Only a label
    /// on the watchdog's metrics (the alarms never look at it); absent means false.
    #[serde(default)]
    pub stale: bool,
    /// For a storage process: where it tells its cache size (`GET` answering JSON with
    /// `cache_bytes`), for an aggregate alarm that counts memory net of the cache. Absent: the
    /// watchdog never asks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_url: Option<String>,
    /// Read as the whole process tree (the process and every descendant, summed): an agent
    /// the lab did not write may fork. Absent means false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tree: bool,
    /// Read by the launcher that started it rather than by the watchdog: on another machine or
    /// in another container's PID namespace the pid means nothing to the watchdog. Absent: the
    /// watchdog reads `/proc/PID` itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reader: Option<LauncherReader>,
}

/// Which copy of a volume a storage server holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplicaRole {
    /// Serves customer I/O and forwards every write to the mirror before acknowledging it.
    Primary,
    /// Takes writes only from the primary of the same epoch.
    Mirror,
}

/// `PUT /volumes/{id}` on a storage server: hold a replica of a volume with this content.
///
/// Control sends it to place a new volume (all blocks 0) and, through the survivor's `copy`, to
/// give a new mirror the data. A replica at a higher epoch replaces whatever was there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaMsg {
    /// The volume's epoch: bumped by control at every failover; writes of older epochs are
    /// refused.
    pub epoch: u64,
    /// Primary or mirror.
    pub role: ReplicaRole,
    /// Where the primary forwards writes (`None` on a mirror, and on a primary whose mirror is
    /// gone: it then refuses writes).
    pub mirror: Option<std::net::SocketAddr>,
    /// The value of every block, by block number.
    pub blocks: Vec<u64>,
}

/// `POST /volumes/{id}/assign` on a storage server: change the role of a replica it holds,
/// keeping its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssignMsg {
    /// The new epoch; must not be lower than the replica's.
    pub epoch: u64,
    /// The new role.
    pub role: ReplicaRole,
    /// The mirror, for a primary.
    pub mirror: Option<std::net::SocketAddr>,
}

/// `POST /volumes/{id}/copy` on a primary: send the whole volume to `target` as its new mirror,
/// then forward writes there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyMsg {
    /// The epoch the copy belongs to; must equal the primary's.
    pub epoch: u64,
    /// The storage server that becomes the mirror.
    pub target: std::net::SocketAddr,
}

/// A block's value, in customer reads and writes (`GET`/`PUT /volumes/{id}/blocks/{n}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockValue {
    /// The value. The customer load writes increasing values per block, so an older value read
    /// back means a lost write.
    pub value: u64,
}

/// `PUT /volumes/{id}/mirror/{n}` from a primary to its mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorWriteMsg {
    /// The primary's epoch; the mirror refuses a mismatch.
    pub epoch: u64,
    /// The value to store.
    pub value: u64,
}

/// One volume in control's map (`GET /volumes`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeInfo {
    /// Volume id (`v0007`).
    pub id: String,
    /// Its state.
    pub state: VolumeState,
    /// The epoch.
    pub epoch: u64,
    /// The serving primary's server id and address, if one serves.
    pub primary: Option<(String, std::net::SocketAddr)>,
    /// The mirror's server id, if it has one.
    pub mirror: Option<String>,
    /// Blocks in the volume.
    pub blocks: u32,
    /// The customer account it belongs to, when the scenario has accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}
