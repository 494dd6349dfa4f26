//! The planner: every interval, a new plan for every endpoint, numbered one generation above
//! the last, stored in the plan store.
//!
//! It stands for the service that watches the load balancers' health and capacity: each plan
//! keeps a seeded share of each endpoint's load balancers (at least one), each with a seeded
//! weight, so that consecutive plans differ the way a real planner's do and an old plan written
//! over a new one shows in the DNS answer.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use outage_lab_dynamodb_events::{Event, EventSink, Generation, Plan, Target};
use outage_lab_proto::HumanDuration;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::client::PlanStore;
use crate::control::Control;

/// Behaviour of the planner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How often it makes a plan.
    pub interval: HumanDuration,
    /// Each endpoint's load balancers, by fully qualified name.
    pub endpoints: BTreeMap<String, Vec<Ipv4Addr>>,
    /// Seed of the plans' choices.
    pub seed: u64,
}

/// Chance that a plan keeps a given load balancer.
const KEEP_CHANCE: f64 = 0.75;

/// Makes plans every `config.interval` until `shutdown`, while `control` has it enabled. A plan
/// the store refuses or cannot take is logged and the next one tries again: the planner never
/// stops on its own.
pub async fn run(
    config: Config,
    store: PlanStore,
    control: watch::Receiver<Control>,
    shutdown: CancellationToken,
    events: EventSink,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut generation = Generation(0);
    let mut tick = tokio::time::interval(Duration::from(config.interval));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !control.borrow().enabled {
            continue;
        }
        generation = generation.next();
        let plan = plan(generation, &config.endpoints, &mut rng);
        match store.publish(&plan).await {
            Ok(()) => events.emit(Event::PlanPublished {
                generation,
                endpoints: (plan.endpoints.keys())
                    .map(|name| (name.clone(), plan.addrs(name)))
                    .collect(),
            }),
            Err(e) => tracing::warn!("planner: plan {generation} not stored: {e}"),
        }
    }
}

/// Plan `generation`: each endpoint keeps each load balancer with [`KEEP_CHANCE`] (at least
/// one), each with a weight from 1 to 255.
pub fn plan(
    generation: Generation,
    endpoints: &BTreeMap<String, Vec<Ipv4Addr>>,
    rng: &mut impl Rng,
) -> Plan {
    let endpoints = (endpoints.iter())
        .map(|(name, addrs)| {
            let mut kept: Vec<Target> = (addrs.iter())
                .filter_map(|&addr| {
                    let keep = rng.random_bool(KEEP_CHANCE);
                    let weight = rng.random_range(1..=255);
                    keep.then_some(Target { addr, weight })
                })
                .collect();
            if kept.is_empty()
                && let Some(&addr) = addrs.get(rng.random_range(0..addrs.len().max(1)))
            {
                kept.push(Target { addr, weight: 1 });
            }
            (name.clone(), kept)
        })
        .collect();
    Plan {
        generation,
        endpoints,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lbs() -> BTreeMap<String, Vec<Ipv4Addr>> {
        let addrs: Vec<Ipv4Addr> = (1..=4).map(|i| Ipv4Addr::new(127, 0, 0, i)).collect();
        BTreeMap::from([("db.lab.internal.".to_owned(), addrs)])
    }

    #[test]
    fn every_plan_keeps_at_least_one_load_balancer_of_each_endpoint_and_only_its_own() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for g in 1..500 {
            let plan = plan(Generation(g), &lbs(), &mut rng);
            let addrs = plan.addrs("db.lab.internal.");
            assert!(!addrs.is_empty(), "plan g{g} empties the endpoint");
            assert!(addrs.iter().all(|a| lbs()["db.lab.internal."].contains(a)));
        }
    }

    #[test]
    fn the_same_seed_makes_the_same_plans_and_plans_differ_from_one_another() {
        let plans = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (1..20)
                .map(|g| plan(Generation(g), &lbs(), &mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(plans(7), plans(7));
        let distinct: std::collections::BTreeSet<_> = plans(7)
            .iter()
            .map(|p| format!("{:?}", p.endpoints))
            .collect();
        assert!(
            distinct.len() > 10,
            "{} distinct plans of 19",
            distinct.len()
        );
    }
}
