//! The DynamoDB 2025 incident's vocabulary: what its processes tell the harness (the planner,
//! the enactors and their clean-up), one flat [`Event`] enum with the engine's kinds beside
//! them, and the DNS automation's plans ([`Plan`], [`Generation`]).
//!
//! The role crates, the report and the 2025 package speak it; the engine never names it: it
//! reads these events through `outage_lab_proto::Vocabulary`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

/// One line of the 2025 incident's `journal.jsonl`.
pub type JournalEntry = outage_lab_proto::JournalEntry<Event>;

/// Where a 2025 role sends its events.
pub type EventSink = outage_lab_proto::EventSink<Event>;

/// A plan's generation: the planner numbers its plans 1, 2, 3, ... and a larger one is newer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Generation(pub u64);

impl Generation {
    /// The generation `by` older than this one (never below 0).
    pub fn older_by(self, by: u64) -> Generation {
        Generation(self.0.saturating_sub(by))
    }

    /// The next one.
    pub fn next(self) -> Generation {
        Generation(self.0 + 1)
    }
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "g{}", self.0)
    }
}

/// One load balancer behind an endpoint, as a plan weighs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The load balancer's address.
    pub addr: Ipv4Addr,
    /// Its share of the traffic, 1 to 255 (the DNS answer holds every target; the weight is
    /// what the planner decided).
    pub weight: u8,
}

/// What the planner wants every endpoint to answer: one generation of the DNS plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Its generation.
    pub generation: Generation,
    /// The targets of each endpoint, by fully qualified name, in the order enactors apply them.
    pub endpoints: BTreeMap<String, Vec<Target>>,
}

impl Plan {
    /// The addresses `endpoint` answers under this plan (none if the plan does not name it).
    pub fn addrs(&self, endpoint: &str) -> Vec<Ipv4Addr> {
        (self.endpoints.get(endpoint).into_iter().flatten())
            .map(|t| t.addr)
            .collect()
    }
}

/// Why an enactor did not apply its plan to an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "because", rename_all = "snake_case")]
pub enum Refusal {
    /// The endpoint's current plan was deleted: the enactor cannot tell what it would replace,
    /// so it touches nothing (the state the automation cannot leave by itself).
    PlanGone {
        /// The generation the endpoint still names.
        current: Generation,
    },
    /// The endpoint already has a newer plan (the check at write time, a fix).
    NewerApplied {
        /// The generation the endpoint has.
        current: Generation,
    },
    /// The enactor's own plan was deleted while it waited to write: there are no records left
    /// to write, so it gives up the rest of its round and picks up the newest plan.
    OwnPlanGone,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::PlanGone { current } => {
                write!(f, "its plan {current} was deleted")
            }
            Refusal::NewerApplied { current } => {
                write!(f, "it already has the newer plan {current}")
            }
            Refusal::OwnPlanGone => f.write_str("the enactor's own plan was deleted meanwhile"),
        }
    }
}

/// Which kind of client of the service a client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// A customer's application.
    Customer,
    /// An internal service that depends on it (EC2's lease manager in October 2025).
    Dependent,
}

outage_lab_proto::with_engine_events! {
    /// Something that happened in a 2025 run, told by a role process or by the harness.
    enum Event; kind EventKind;
    incident {
        /// The planner stored a new plan.
        PlanPublished = "plan_published" {
            /// Its generation.
            generation: Generation,
            /// The addresses each endpoint answers under it.
            endpoints: BTreeMap<String, Vec<Ipv4Addr>>,
        },
        /// An enactor picked up the newest plan, having checked once that it is newer than the
        /// one last applied.
        PlanPicked = "plan_picked" {
            /// The enactor.
            enactor: String,
            /// The plan it will apply.
            generation: Generation,
            /// The newest generation any endpoint had when it checked.
            last_applied: Option<Generation>,
        },
        /// An enactor's write to an endpoint stalled before it went through (a slowed enactor).
        WriteStalled = "write_stalled" {
            /// The enactor.
            enactor: String,
            /// The endpoint it was writing.
            endpoint: String,
            /// The plan it was applying.
            generation: Generation,
            /// How long the write stalled, in milliseconds.
            stalled_ms: u64,
        },
        /// An enactor wrote its plan's addresses for an endpoint to every DNS server.
        EndpointApplied = "endpoint_applied" {
            /// The enactor.
            enactor: String,
            /// The endpoint.
            endpoint: String,
            /// The plan it applied.
            generation: Generation,
            /// The plan the endpoint had before (none the first time).
            replaced: Option<Generation>,
            /// The addresses the endpoint answers now.
            addrs: Vec<Ipv4Addr>,
        },
        /// An enactor left an endpoint alone.
        ApplyRefused = "apply_refused" {
            /// The enactor.
            enactor: String,
            /// The endpoint.
            endpoint: String,
            /// The plan it would have applied.
            generation: Generation,
            /// Why it did not.
            #[serde(flatten)]
            refusal: Refusal,
        },
        /// An enactor's clean-up deleted an old plan, and with it the records of every endpoint
        /// that still used it.
        PlanDeleted = "plan_deleted" {
            /// The enactor whose clean-up it was.
            enactor: String,
            /// The plan deleted.
            generation: Generation,
            /// The plan the enactor had just applied (what "old" was measured against).
            applied: Generation,
            /// Endpoints that used the deleted plan and now answer no address.
            emptied: Vec<String>,
        },
        /// One client's last second of requests to the service.
        ClientStats = "client_stats" {
            /// The client's name.
            client: String,
            /// What kind of client it is.
            client_kind: ClientKind,
            /// Requests answered with success.
            ok: u64,
            /// Requests that failed, for any reason.
            failed: u64,
            /// Lookups of the endpoint (one per new connection).
            lookups: u64,
            /// Lookups that found no address or no answer.
            lookups_failed: u64,
            /// Lookups answered from the last good answer because the new one failed (a fix).
            served_stale: u64,
        },
        /// The lease manager's last second: its queue, its work and the leases it holds.
        LeaseStats = "lease_stats" {
            /// Work queued now.
            queued: u64,
            /// Renewals asked for.
            received: u64,
            /// Work its workers finished.
            processed: u64,
            /// Of that, work finished before its requester gave up: leases renewed (goodput).
            completed: u64,
            /// Of that, work finished after its requester gave up: done for nothing.
            timed_out: u64,
            /// Of that, work whose state check failed (the service unreachable).
            failed_checks: u64,
            /// Work dropped unprocessed (admission control).
            dropped: u64,
            /// Renewals refused at once by the operators' throttle.
            throttled: u64,
            /// Servers whose lease is valid now.
            leases_valid: u64,
            /// Servers it has ever granted a lease.
            servers: u64,
        },
        /// One customer's last second of instance launches: each needs a server whose lease is
        /// valid, and without one the answer is "insufficient capacity".
        LaunchStats = "launch_stats" {
            /// The customer's name (`customer-1`, ...).
            customer: String,
            /// Launches placed on a server.
            launched: u64,
            /// Launches refused because no server held a valid lease.
            insufficient_capacity: u64,
            /// Launches that failed otherwise (no answer in time, the manager down).
            failed: u64,
        },
        /// What a lab DNS server answered the harness's own query for the service's endpoint,
        /// told when it changed: the answer every client's resolver gets, in real DNS packets.
        EndpointProbed = "endpoint_probed" {
            /// The DNS server (`dns-a`, ...).
            server: String,
            /// The endpoint asked for.
            endpoint: String,
            /// The addresses answered: none for an empty answer (NODATA or NXDOMAIN).
            addrs: Vec<Ipv4Addr>,
            /// Why there was no answer at all (a timeout), if so.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            error: Option<String>,
        },
        /// Clean-up kept an old plan because an endpoint still uses it (a fix).
        PlanKept = "plan_kept" {
            /// The enactor whose clean-up it was.
            enactor: String,
            /// The plan kept.
            generation: Generation,
            /// The endpoints that use it.
            used_by: Vec<String>,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_written_flat_beside_the_events_other_fields() {
        let event = Event::ApplyRefused {
            enactor: "enactor-a".into(),
            endpoint: "dynamodb.lab.internal.".into(),
            generation: Generation(7),
            refusal: Refusal::PlanGone {
                current: Generation(3),
            },
        };
        let line = serde_json::to_string(&event).expect("serialises");
        assert_eq!(
            line,
            r#"{"kind":"apply_refused","enactor":"enactor-a","endpoint":"dynamodb.lab.internal.","generation":7,"because":"plan_gone","current":3}"#
        );
        assert_eq!(serde_json::from_str::<Event>(&line).expect("parses"), event);
    }

    #[test]
    fn generations_order_and_count_back_without_going_below_zero() {
        assert!(Generation(9) > Generation(3));
        assert_eq!(Generation(9).older_by(5), Generation(4));
        assert_eq!(Generation(2).older_by(5), Generation(0));
        assert_eq!(Generation(2).to_string(), "g2");
    }
}
