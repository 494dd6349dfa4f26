//! The race of October 2025 over real sockets: three DNS servers, a plan store, a planner and
//! enactors, each on its own sockets on 127.0.0.1 (as tasks of one test process; in a run each is
//! a process).
//!
//! Free-running, nothing is arranged: with no enactor slowed, clean-up never deletes a plan in
//! use; with enactor a stalling before each write, the race fires by itself when one of its old
//! plans lands between another enactor's write of the same endpoint and that enactor's
//! clean-up. The fixes are judged on that interleaving played step by step through the
//! enactors' own `apply` and `clean_up`, so that each test of a fix meets the race for certain.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use outage_lab_dns::client::query_a;
use outage_lab_dns::testing;
use outage_lab_dns_automation::client::PlanStore;
use outage_lab_dns_automation::control::Control;
use outage_lab_dns_automation::enactor::{self, Enactor};
use outage_lab_dns_automation::roles::{self, Listeners};
use outage_lab_dns_automation::{Fixes, planner, repair};
use outage_lab_dynamodb_events::{Event, EventSink, Generation, Plan, Refusal, Target};
use outage_lab_proto::HumanDuration;
use tokio::net::TcpListener;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Endpoints in every plan, in the order enactors apply them.
const ENDPOINTS: usize = 8;

/// Clean-up deletes plans more than this many generations older than the one applied.
const KEEP: u64 = 10;

/// How long an enactor waits after each endpoint: with 8 endpoints, a fast enactor's pass takes
/// about 400 ms, 4 plans of the planner's.
const SETTLE: HumanDuration = HumanDuration::millis(50);

/// How long enactor a stalls before each write when slowed. Measured on 2 cores: the race fired
/// in 8 of 8 runs within 6.3 s of the stall, and in 6 of 6 within 12.4 s with two busy loops
/// taking the cores, and in 25 of 25 within 18.1 s while the machine also compiled; an
/// idle lab gives it no chance at all. Waiting for an endpoint left empty for good (its plan
/// refused as gone): 20 of 20 within 10.5 s, 10 of them with two busy loops.
const STALL: HumanDuration = HumanDuration::millis(300);

/// The longest the free-running test waits for the race: 2.5 times the slowest seen.
const RACE_WITHIN: Duration = Duration::from_secs(45);

fn endpoint(i: usize) -> String {
    format!("ep{i}.lab.internal.")
}

/// One lab: its DNS servers, the store, the planner and enactors `a`, `b` and `c`.
struct Lab {
    dns: Vec<SocketAddr>,
    admins: Vec<SocketAddr>,
    store_addr: SocketAddr,
    store: PlanStore,
    http: reqwest::Client,
    events: Receiver<Event>,
    seen: Vec<Event>,
    shutdown: CancellationToken,
    /// The planner's and each enactor's admin API, by name.
    controls: BTreeMap<String, SocketAddr>,
    _stop: DropGuard,
}

impl Lab {
    /// DNS servers and a plan store, nothing running against them.
    async fn idle() -> Lab {
        let shutdown = CancellationToken::new();
        let (mut dns, mut admins) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let served = testing::serve(outage_lab_dns::Config::default(), &shutdown).await;
            dns.push(served.dns);
            admins.push(served.admin);
        }
        let http = TcpListener::bind("127.0.0.1:0").await.expect("store");
        let store_addr = http.local_addr().expect("addr");
        let role = roles::plan_store(Listeners { http }, shutdown.clone(), EventSink::discard());
        tokio::spawn(role);
        let http = reqwest::Client::new();
        let store = PlanStore::new(http.clone(), store_addr);
        let events = std::sync::mpsc::channel().1;
        Lab {
            dns,
            admins,
            store_addr,
            store,
            http,
            events,
            seen: Vec::new(),
            controls: BTreeMap::new(),
            _stop: shutdown.clone().drop_guard(),
            shutdown,
        }
    }

    /// A lab with a planner making a plan every 100 ms and enactors `a`, `b` and `c` at work,
    /// each a role on its own admin socket, none slowed.
    async fn start(fixes: Fixes) -> Lab {
        let mut lab = Lab::idle().await;
        let (sink, events) = EventSink::channel();
        let store = lab.store_addr;
        let lbs = |i: usize| {
            (1..=3)
                .map(|k| Ipv4Addr::new(127, 0, i as u8 + 1, k))
                .collect()
        };
        let planner = planner::Config {
            interval: HumanDuration::millis(100),
            endpoints: (0..ENDPOINTS).map(|i| (endpoint(i), lbs(i))).collect(),
            seed: 2025,
        };
        let shutdown = lab.shutdown.clone();
        let http = TcpListener::bind("127.0.0.1:0").await.expect("planner");
        lab.controls
            .insert("planner".into(), http.local_addr().expect("addr"));
        let role = roles::planner(
            planner,
            store,
            Listeners { http },
            shutdown.clone(),
            sink.clone(),
        );
        tokio::spawn(role);
        for name in ["enactor-a", "enactor-b", "enactor-c"] {
            let config = enactor::Config {
                name: name.into(),
                poll: HumanDuration::millis(20),
                settle: SETTLE,
                keep_generations: KEEP,
                dns_admins: lab.admins.clone(),
                fixes,
                seed: 2025,
            };
            let http = TcpListener::bind("127.0.0.1:0").await.expect("enactor");
            lab.controls
                .insert(name.into(), http.local_addr().expect("addr"));
            let role = roles::enactor(
                config,
                store,
                Listeners { http },
                shutdown.clone(),
                sink.clone(),
            );
            tokio::spawn(role);
        }
        lab.events = events;
        lab
    }

    /// Puts `control` in force on the planner or enactor `name` through its admin API, as a
    /// step would.
    async fn control(&self, name: &str, control: Control) {
        let url = format!("http://{}/control", self.controls[name]);
        let answer = self
            .http
            .put(&url)
            .json(&control)
            .send()
            .await
            .expect("admin API");
        assert!(answer.status().is_success(), "{url}: {}", answer.status());
        let in_force: Control = answer.json().await.expect("a control");
        assert_eq!(in_force, control);
    }

    /// Waits up to `limit` for an event `pick` accepts; every event seen is kept.
    async fn wait_for<T>(
        &mut self,
        limit: Duration,
        pick: impl Fn(&Event) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + limit;
        loop {
            while let Ok(event) = self.events.try_recv() {
                let found = pick(&event);
                self.seen.push(event);
                if found.is_some() {
                    return found;
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What every DNS server answers for `name` now.
    async fn answers(&self, name: &str) -> Vec<Vec<Ipv4Addr>> {
        let mut all = Vec::new();
        for &server in &self.dns {
            let answer = query_a(server, name, Duration::from_secs(2)).await;
            all.push(answer.expect("the DNS server answers"));
        }
        all
    }
}

fn emptied(event: &Event) -> Option<(Generation, Vec<String>)> {
    match event {
        Event::PlanDeleted {
            generation,
            emptied,
            ..
        } if !emptied.is_empty() => Some((*generation, emptied.clone())),
        _ => None,
    }
}

/// The stale overwrites seen: (enactor, endpoint, the old plan written, the newer one replaced).
fn stale_writes(seen: &[Event]) -> Vec<(String, String, Generation, Generation)> {
    (seen.iter())
        .filter_map(|e| match e {
            Event::EndpointApplied {
                enactor,
                endpoint,
                generation,
                replaced: Some(r),
                ..
            } if r > generation => Some((enactor.clone(), endpoint.clone(), *generation, *r)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_enactor_slowed_no_plan_in_use_is_ever_deleted() {
    let mut lab = Lab::start(Fixes::default()).await;
    let race = lab.wait_for(Duration::from_secs(8), emptied).await;
    assert_eq!(
        race, None,
        "a plan in use was deleted with no enactor slowed"
    );
    let deleted = (lab.seen.iter())
        .filter(|e| matches!(e, Event::PlanDeleted { .. }))
        .count();
    assert!(
        deleted > 20,
        "clean-up deleted only {deleted} plans: it hardly ran"
    );
    // Two enactors working in step can still cross (the one with the older plan falls a write
    // behind), but never by as many generations as clean-up keeps: that takes a stall.
    let stale = stale_writes(&lab.seen);
    assert!(
        (stale.iter()).all(|(_, _, old, new)| new.0 - old.0 < KEEP),
        "a stale write older than clean-up keeps, with no enactor slowed: {stale:?}"
    );
    for i in 0..ENDPOINTS {
        let answers = lab.answers(&endpoint(i)).await;
        assert!(
            answers.iter().all(|a| !a.is_empty()),
            "{}: {answers:?}",
            endpoint(i)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowed_enactor_empties_an_endpoint_by_itself_and_the_automation_leaves_it_empty() {
    let mut lab = Lab::start(Fixes::default()).await;
    let _ = lab
        .wait_for(Duration::from_millis(600), |_| None::<()>)
        .await;
    let slowed = Control {
        stall: STALL,
        ..Control::default()
    };
    lab.control("enactor-a", slowed).await;
    let began = Instant::now();
    let Some((victim, deleted)) = lab.wait_for(RACE_WITHIN, emptied_for_good()).await else {
        panic!("no endpoint was left with its plan deleted within {RACE_WITHIN:?} of the stall");
    };
    eprintln!("the race fired {:?} after the stall began", began.elapsed());
    let stale = stale_writes(&lab.seen);
    assert!(
        (stale.iter()).any(|(who, ep, g, _)| who == "enactor-a" && *ep == victim && *g == deleted),
        "{deleted} was deleted from {victim}, but enactor a wrote no such stale plan: {stale:?}"
    );
    assert_eq!(lab.answers(&victim).await, vec![Vec::<Ipv4Addr>::new(); 3]);
}

/// Picks the first endpoint an enactor refuses because its plan is gone, after clean-up deleted
/// that plan and emptied the endpoint: (the endpoint, the plan).
///
/// Not the first emptying itself: clean-up empties the endpoints its snapshot says use the plan,
/// and an enactor that checked the endpoint just before the delete may record a newer plan
/// after it (CI saw it once in about 30 runs). That endpoint's records are written again within
/// a pass; the outage is an endpoint whose own plan is gone, which no enactor touches again.
fn emptied_for_good() -> impl Fn(&Event) -> Option<(String, Generation)> {
    let emptied = std::cell::RefCell::new(std::collections::BTreeSet::new());
    move |event| match event {
        Event::PlanDeleted {
            generation,
            emptied: endpoints,
            ..
        } => {
            let mut emptied = emptied.borrow_mut();
            emptied.extend(endpoints.iter().map(|e| (e.clone(), *generation)));
            None
        }
        Event::ApplyRefused {
            endpoint,
            refusal: Refusal::PlanGone { current },
            ..
        } => {
            let found = (endpoint.clone(), *current);
            emptied.borrow().contains(&found).then_some(found)
        }
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_the_automation_stops_every_plan_and_write_until_it_is_enabled_again() {
    let mut lab = Lab::start(Fixes::default()).await;
    let _ = lab.wait_for(Duration::from_secs(1), |_| None::<()>).await;
    let names: Vec<String> = lab.controls.keys().cloned().collect();
    let off = Control {
        enabled: false,
        ..Control::default()
    };
    for name in &names {
        lab.control(name, off).await;
    }
    // A round in progress finishes (8 endpoints at 50 ms); after that, nothing.
    let _ = lab
        .wait_for(Duration::from_millis(700), |_| None::<()>)
        .await;
    let working = |e: &Event| {
        matches!(
            e,
            Event::PlanPublished { .. } | Event::EndpointApplied { .. }
        )
        .then(|| e.clone())
    };
    let work = lab.wait_for(Duration::from_millis(1500), working).await;
    assert_eq!(work, None, "the automation worked while disabled");
    for name in &names {
        lab.control(name, Control::default()).await;
    }
    let applied = |e: &Event| matches!(e, Event::EndpointApplied { .. }).then_some(());
    let resumed = lab.wait_for(Duration::from_secs(3), applied).await;
    assert_eq!(
        resumed,
        Some(()),
        "no enactor applied a plan once enabled again"
    );
}

/// The parts of a lab without its planner and enactors running: the test plays them.
struct Bench {
    lab: Lab,
    events: EventSink,
}

impl Bench {
    async fn start() -> Bench {
        let mut lab = Lab::idle().await;
        let (events, rx) = EventSink::channel();
        lab.events = rx;
        Bench { lab, events }
    }

    fn enactor(&self, name: &str, fixes: Fixes) -> Enactor {
        Enactor {
            config: enactor::Config {
                name: name.into(),
                poll: HumanDuration::millis(20),
                settle: HumanDuration::millis(0),
                keep_generations: KEEP,
                dns_admins: self.lab.admins.clone(),
                fixes,
                seed: 2025,
            },
            store: self.lab.store.clone(),
            http: self.lab.http.clone(),
            events: self.events.clone(),
        }
    }

    /// Publishes plan g`g`, giving `ep0` the address 127.0.1.g.
    async fn publish_one(&self, g: u64) -> Plan {
        let addr = Ipv4Addr::new(127, 0, 1, u8::try_from(g).expect("small"));
        let plan = Plan {
            generation: Generation(g),
            endpoints: BTreeMap::from([(endpoint(0), vec![Target { addr, weight: 1 }])]),
        };
        self.lab.store.publish(&plan).await.expect("published");
        plan
    }

    /// Publishes plans g1 to g`newest`, each giving `ep0` the address 127.0.1.g.
    async fn publish(&self, newest: u64) -> Vec<Plan> {
        let mut plans = Vec::new();
        for g in 1..=newest {
            plans.push(self.publish_one(g).await);
        }
        plans
    }

    /// The October interleaving: `a` picked up g3 long ago; `b` applies g15 and, just before its
    /// clean-up, `a`'s stalled write of g3 lands.
    async fn race(&mut self, fixes: Fixes) -> Vec<Plan> {
        let plans = self.publish(15).await;
        let (a, b) = (
            self.enactor("enactor-a", fixes),
            self.enactor("enactor-b", fixes),
        );
        b.apply(&plans[14], &endpoint(0))
            .await
            .expect("b applies g15");
        a.apply(&plans[2], &endpoint(0))
            .await
            .expect("a's stalled write");
        b.clean_up(Generation(15)).await.expect("b cleans up");
        let _ = self
            .lab
            .wait_for(Duration::from_millis(100), |_| None::<()>)
            .await;
        plans
    }
}

#[tokio::test]
async fn an_old_plan_written_just_before_clean_up_is_deleted_and_the_endpoint_answers_nothing() {
    let mut bench = Bench::start().await;
    bench.race(Fixes::default()).await;
    let seen = &bench.lab.seen;
    assert_eq!(
        stale_writes(seen),
        vec![(
            "enactor-a".into(),
            endpoint(0),
            Generation(3),
            Generation(15)
        )]
    );
    let emptied: Vec<_> = seen.iter().filter_map(emptied).collect();
    assert_eq!(emptied, vec![(Generation(3), vec![endpoint(0)])]);
    assert_eq!(
        bench.lab.answers(&endpoint(0)).await,
        vec![Vec::<Ipv4Addr>::new(); 3]
    );

    // The automation cannot repair it: the next enactor refuses an endpoint whose plan is gone.
    let c = bench.enactor("enactor-c", Fixes::default());
    let newer = bench.publish_one(16).await;
    c.apply(&newer, &endpoint(0)).await.expect("c's round");
    let refused = bench
        .lab
        .wait_for(Duration::from_secs(2), |e| match e {
            Event::ApplyRefused { refusal, .. } => Some(*refusal),
            _ => None,
        })
        .await;
    assert_eq!(
        refused,
        Some(Refusal::PlanGone {
            current: Generation(3)
        })
    );
    assert_eq!(
        bench.lab.answers(&endpoint(0)).await,
        vec![Vec::<Ipv4Addr>::new(); 3]
    );

    // An operator's repair restores the newest plan, and the enactors take the endpoint up again.
    let lab = &bench.lab;
    let repaired = repair::manual_repair(&lab.store, &lab.http, &lab.admins, &endpoint(0)).await;
    assert_eq!(repaired.expect("repair"), Some(Generation(16)));
    assert_eq!(
        bench.lab.answers(&endpoint(0)).await,
        vec![newer.addrs(&endpoint(0)); 3]
    );
    let newest = bench.publish_one(17).await;
    c.apply(&newest, &endpoint(0)).await.expect("c's round");
    assert_eq!(
        bench.lab.answers(&endpoint(0)).await,
        vec![newest.addrs(&endpoint(0)); 3]
    );
}

#[tokio::test]
async fn checking_at_write_time_refuses_the_old_plan_so_the_endpoint_keeps_the_new_one() {
    let mut bench = Bench::start().await;
    let fixes = Fixes {
        enactor_checks_at_write: true,
        ..Fixes::default()
    };
    let plans = bench.race(fixes).await;
    assert_eq!(stale_writes(&bench.lab.seen), vec![]);
    let refusals: Vec<_> = (bench.lab.seen.iter())
        .filter_map(|e| match e {
            Event::ApplyRefused {
                enactor, refusal, ..
            } => Some((enactor.clone(), *refusal)),
            _ => None,
        })
        .collect();
    let newer = Refusal::NewerApplied {
        current: Generation(15),
    };
    assert_eq!(refusals, vec![("enactor-a".into(), newer)]);
    assert_eq!(
        bench.lab.answers(&endpoint(0)).await,
        vec![plans[14].addrs(&endpoint(0)); 3]
    );
}

#[tokio::test]
async fn clean_up_that_keeps_plans_in_use_leaves_the_stale_plan_answering() {
    let mut bench = Bench::start().await;
    let fixes = Fixes {
        cleanup_keeps_active_plan: true,
        ..Fixes::default()
    };
    let plans = bench.race(fixes).await;
    assert_eq!(
        stale_writes(&bench.lab.seen).len(),
        1,
        "the stale write still happens"
    );
    assert_eq!(bench.lab.seen.iter().filter_map(emptied).count(), 0);
    let kept = (bench.lab.seen.iter()).find_map(|e| match e {
        Event::PlanKept {
            generation,
            used_by,
            ..
        } => Some((*generation, used_by.clone())),
        _ => None,
    });
    assert_eq!(kept, Some((Generation(3), vec![endpoint(0)])));
    assert_eq!(
        bench.lab.answers(&endpoint(0)).await,
        vec![plans[2].addrs(&endpoint(0)); 3]
    );
}

#[tokio::test]
async fn the_store_will_not_record_an_endpoint_as_using_a_plan_it_no_longer_holds() {
    let bench = Bench::start().await;
    let store = &bench.lab.store;
    bench.publish_one(1).await;
    bench.publish_one(2).await;
    store
        .set_endpoint(&endpoint(0), Generation(1))
        .await
        .expect("g1 is stored");
    assert!(store.delete(Generation(1)).await.expect("deleted"));
    let refused = store.set_endpoint(&endpoint(0), Generation(1)).await;
    assert!(
        refused.is_err(),
        "an endpoint recorded as using a deleted plan"
    );
    let used = store.endpoints().await.expect("endpoints").endpoints;
    assert_eq!(
        used.get(&endpoint(0)),
        Some(&Generation(1)),
        "what it had stays"
    );
}
