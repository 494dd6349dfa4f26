//! An enactor: it picks up the newest plan, checks once that it is newer than the one last
//! applied, writes it endpoint after endpoint to every DNS server, and then cleans up: it
//! deletes the plans many generations older than the one it applied, and with each the records
//! of any endpoint that still used it.
//!
//! Before it writes an endpoint it reads its own plan again (one deleted while it waited is given
//! up: there is nothing left to write), and looks at the plan the endpoint has; if that plan was
//! deleted, it cannot tell what it would replace and leaves the endpoint alone. That is how an endpoint
//! emptied by clean-up stays empty: no enactor will touch it again until an operator repairs it.
//!
//! Three run, independently. A slowed one (the `slow_enactor` step) stalls before each write;
//! nothing else about the race is arranged: it fires when a stalled write lands between another
//! enactor's write of the same endpoint and that enactor's clean-up.

use std::net::SocketAddr;
use std::time::Duration;

use outage_lab_dynamodb_events::{Event, EventSink, Generation, Plan, Refusal};
use outage_lab_proto::HumanDuration;
use outage_lab_proto::wire::DnsChange;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::client::{PlanStore, StoreError};
use crate::control::Control;
use crate::fixes::{Fixes, cleanup_keeps_active_plan, enactor_checks_at_write};

/// Behaviour of one enactor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Its name (`enactor-a`), in its events.
    pub name: String,
    /// How often it looks for a newer plan.
    pub poll: HumanDuration,
    /// How long it waits after writing an endpoint for the DNS servers to take the change before
    /// the next endpoint (a DNS transaction is not instant).
    pub settle: HumanDuration,
    /// Clean-up deletes plans more than this many generations older than the one applied.
    pub keep_generations: u64,
    /// Every DNS server's admin API.
    pub dns_admins: Vec<SocketAddr>,
    /// The fixes it runs with.
    #[serde(default)]
    pub fixes: Fixes,
    /// Seed of its random choices (how long each stall lasts, within the control's jitter).
    #[serde(default)]
    pub seed: u64,
}

/// Why one round of an enactor's work stopped short.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    /// The plan store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A DNS server's admin API failed.
    #[error(transparent)]
    Dns(#[from] outage_lab_dns::client::AdminError),
}

/// An enactor's parts: where it reads and writes, and how it tells.
#[derive(Debug, Clone)]
pub struct Enactor {
    /// Its behaviour.
    pub config: Config,
    /// The plan store.
    pub store: PlanStore,
    /// The HTTP client for the DNS servers' admin APIs.
    pub http: reqwest::Client,
    /// Where it tells what it did.
    pub events: EventSink,
}

impl Enactor {
    /// Works until `shutdown`: every `poll`, one round while `control` has it enabled, each
    /// write stalling for as long as `control` says (zero unless the enactor is slowed). A
    /// round that fails is logged and the next tries again.
    pub async fn run(self, control: watch::Receiver<Control>, shutdown: CancellationToken) {
        let mut last_done: Option<Generation> = None;
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.config.poll.into()) => {}
            }
            if !control.borrow().enabled {
                continue;
            }
            match self.round(last_done, &control, &mut rng, &shutdown).await {
                Ok(Some(done)) => last_done = Some(done),
                Ok(None) => {}
                Err(e) => tracing::warn!("{}: {e}", self.config.name),
            }
        }
    }

    /// Picks up the newest plan unless it has seen it already; checks once that it is newer than
    /// every endpoint's; applies it and cleans up. The plan it dealt with, if any.
    async fn round(
        &self,
        last_done: Option<Generation>,
        control: &watch::Receiver<Control>,
        rng: &mut ChaCha8Rng,
        shutdown: &CancellationToken,
    ) -> Result<Option<Generation>, RoundError> {
        let Some(plan) = self.store.newest().await? else {
            return Ok(None);
        };
        if last_done.is_some_and(|done| done >= plan.generation) {
            return Ok(None);
        }
        let last_applied = self.store.endpoints().await?.endpoints.into_values().max();
        if last_applied.is_some_and(|applied| applied >= plan.generation) {
            return Ok(Some(plan.generation));
        }
        self.events.emit(Event::PlanPicked {
            enactor: self.config.name.clone(),
            generation: plan.generation,
            last_applied,
        });
        for endpoint in plan.endpoints.keys() {
            let stalled = control.borrow().next_stall(rng);
            if !stalled.is_zero() {
                self.stall_before(endpoint, plan.generation, stalled, shutdown)
                    .await;
            }
            if shutdown.is_cancelled() {
                return Ok(None);
            }
            if !self.plan_still_there(&plan, endpoint).await? {
                return Ok(Some(plan.generation));
            }
            self.apply(&plan, endpoint).await?;
            tokio::time::sleep(self.config.settle.into()).await;
        }
        self.clean_up(plan.generation).await?;
        Ok(Some(plan.generation))
    }

    /// Whether the plan it is applying is still in the store: it reads its plan at each write,
    /// as a real enactor reads the plan it applies; one deleted while it waited is given up
    /// (told as a refusal of `endpoint`).
    async fn plan_still_there(&self, plan: &Plan, endpoint: &str) -> Result<bool, RoundError> {
        if self.store.plan(plan.generation).await?.is_some() {
            return Ok(true);
        }
        self.events.emit(Event::ApplyRefused {
            enactor: self.config.name.clone(),
            endpoint: endpoint.to_owned(),
            generation: plan.generation,
            refusal: Refusal::OwnPlanGone,
        });
        Ok(false)
    }

    async fn stall_before(
        &self,
        endpoint: &str,
        generation: Generation,
        stalled: Duration,
        shutdown: &CancellationToken,
    ) {
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(stalled) => {}
        }
        self.events.emit(Event::WriteStalled {
            enactor: self.config.name.clone(),
            endpoint: endpoint.to_owned(),
            generation,
            stalled_ms: u64::try_from(stalled.as_millis()).unwrap_or(u64::MAX),
        });
    }

    /// Writes `plan`'s records for `endpoint` to every DNS server, unless the endpoint's own plan
    /// is gone (or, with the fix, newer).
    pub async fn apply(&self, plan: &Plan, endpoint: &str) -> Result<(), RoundError> {
        let generation = plan.generation;
        let replaced = self.store.endpoints().await?.endpoints.remove(endpoint);
        let fix = self.config.fixes.enactor_checks_at_write;
        let mut refusal = None;
        if let Some(current) = replaced
            && self.store.plan(current).await?.is_none()
        {
            refusal = Some(Refusal::PlanGone { current });
        }
        if refusal.is_none() {
            refusal =
                enactor_checks_at_write::claim(&self.store, endpoint, generation, fix).await?;
        }
        if let Some(refusal) = refusal {
            self.events.emit(Event::ApplyRefused {
                enactor: self.config.name.clone(),
                endpoint: endpoint.to_owned(),
                generation,
                refusal,
            });
            return Ok(());
        }
        let addrs = plan.addrs(endpoint);
        self.write_everywhere(endpoint, &addrs).await?;
        enactor_checks_at_write::record(&self.store, endpoint, generation, fix).await?;
        self.events.emit(Event::EndpointApplied {
            enactor: self.config.name.clone(),
            endpoint: endpoint.to_owned(),
            generation,
            replaced,
            addrs,
        });
        Ok(())
    }

    async fn write_everywhere(
        &self,
        endpoint: &str,
        addrs: &[std::net::Ipv4Addr],
    ) -> Result<(), RoundError> {
        let change = DnsChange::Set(addrs.iter().map(|&a| a.into()).collect());
        for &admin in &self.config.dns_admins {
            outage_lab_dns::client::change(&self.http, admin, endpoint, &change).await?;
        }
        Ok(())
    }

    /// Deletes the plans more than `keep_generations` older than `applied`, and empties every
    /// endpoint that used one (unless the fix keeps those plans).
    pub async fn clean_up(&self, applied: Generation) -> Result<(), RoundError> {
        let horizon = applied.older_by(self.config.keep_generations);
        let old: Vec<Generation> = (self.store.generations().await?.into_iter())
            .filter(|g| *g < horizon)
            .collect();
        if old.is_empty() {
            return Ok(());
        }
        let in_use = self.store.endpoints().await?.endpoints;
        let fix = self.config.fixes.cleanup_keeps_active_plan;
        let (delete, keep) = cleanup_keeps_active_plan::sort(&old, &in_use, fix);
        for (generation, used_by) in keep {
            self.events.emit(Event::PlanKept {
                enactor: self.config.name.clone(),
                generation,
                used_by,
            });
        }
        for generation in delete {
            if !self.store.delete(generation).await? {
                continue;
            }
            let emptied: Vec<String> = (in_use.iter())
                .filter(|(_, used)| **used == generation)
                .map(|(name, _)| name.clone())
                .collect();
            for endpoint in &emptied {
                self.write_everywhere(endpoint, &[]).await?;
            }
            self.events.emit(Event::PlanDeleted {
                enactor: self.config.name.clone(),
                generation,
                applied,
                emptied,
            });
        }
        Ok(())
    }
}
