//! The control plane against real storage servers on loopback: placement, failover with and
//! without spare capacity.
//!
//! Storage servers run in this process with a 1 MiB budget, less than the process already
//! holds, so none grows a cache (they cannot fight over sizing) and each block access costs a
//! 1 ms "disk" read: probes answer in time until a server is stopped.

use std::net::SocketAddr;
use std::time::Duration;

use outage_lab_control::{Config, ServerEntry};
use outage_lab_ebs_events::wire::{BlockValue, VolumeInfo};
use outage_lab_ebs_events::{Event, FailoverOutcome, VolumeState};
use outage_lab_proto::testing::{RunningRole, next_event, start_role};
use outage_lab_proto::{ByteSize, HumanDuration};

const WAIT: Duration = Duration::from_secs(15);

struct Storage {
    id: String,
    role: RunningRole<outage_lab_storage::Error, outage_lab_ebs_events::Event>,
}

async fn storage(id: &str) -> Storage {
    let mut c = outage_lab_storage::Config::new(id);
    c.budget = ByteSize::mib(1);
    c.working_set = ByteSize::kib(64);
    c.miss_penalty = HumanDuration::millis(1);
    c.request_deadline = HumanDuration::millis(200);
    c.replica_size = ByteSize::kib(64);
    c.probe_blocks = 1;
    let role = start_role("storage", "http", |http, shutdown, sink| {
        outage_lab_storage::run(c, outage_lab_storage::Listeners { http }, shutdown, sink)
    })
    .await;
    Storage {
        id: id.to_owned(),
        role,
    }
}

impl Storage {
    /// Stops the server, which control sees as failed; how its `run` ends does not matter here.
    async fn stop(self) {
        self.role.shutdown.cancel();
        let _ = tokio::time::timeout(WAIT, self.role.task).await;
    }
}

struct Control {
    role: RunningRole<outage_lab_control::Error, outage_lab_ebs_events::Event>,
}

async fn control(servers: &[&Storage], slots: u32, fill: f64) -> Control {
    let entries = servers
        .iter()
        .map(|s| ServerEntry {
            id: s.id.clone(),
            addr: s.role.addr,
        })
        .collect();
    let mut c = Config::new(entries);
    c.slots_per_server = slots;
    c.placement_fill = fill;
    c.blocks_per_volume = 4;
    c.probe_interval = HumanDuration::millis(50);
    c.probe_window = 3;
    c.fail_after = 2;
    c.recover_after = 2;
    c.seed = 5;
    // Control places every volume before it says Ready.
    let role = start_role("control", "http", |http, shutdown, sink| {
        outage_lab_control::run(c, outage_lab_control::Listeners { http }, shutdown, sink)
    })
    .await;
    Control { role }
}

impl Control {
    async fn next(&self, pred: impl Fn(&Event) -> bool) -> Event {
        next_event(&self.role.events, WAIT, pred)
            .await
            .expect("event in time")
    }

    async fn volumes(&self) -> Vec<VolumeInfo> {
        reqwest::get(self.role.url("/volumes"))
            .await
            .expect("GET /volumes")
            .json()
            .await
            .expect("volume map")
    }

    async fn stop(self) {
        self.role.stop(WAIT).await.expect("clean stop");
    }
}

fn primary(v: &VolumeInfo) -> SocketAddr {
    v.primary.as_ref().expect("a serving primary").1
}

async fn write(addr: SocketAddr, volume: &str, block: u32, value: u64) -> u16 {
    reqwest::Client::new()
        .put(format!("http://{addr}/volumes/{volume}/blocks/{block}"))
        .json(&BlockValue { value })
        .send()
        .await
        .expect("write")
        .status()
        .as_u16()
}

async fn read(addr: SocketAddr, volume: &str, block: u32) -> u64 {
    reqwest::get(format!("http://{addr}/volumes/{volume}/blocks/{block}"))
        .await
        .expect("read")
        .json::<BlockValue>()
        .await
        .expect("value")
        .value
}

async fn replicas_on(s: &Storage) -> u64 {
    reqwest::get(s.role.url("/health"))
        .await
        .expect("health")
        .json::<outage_lab_storage::Health>()
        .await
        .expect("health JSON")
        .replicas
}

#[tokio::test]
async fn placement_puts_two_copies_of_every_volume_within_each_servers_slots() {
    let servers = [
        storage("s0").await,
        storage("s1").await,
        storage("s2").await,
        storage("s3").await,
    ];
    let refs: Vec<&Storage> = servers.iter().collect();
    let ctl = control(&refs, 3, 1.0).await;
    let map = ctl.volumes().await;
    assert_eq!(map.len(), 6, "4 servers x 3 slots / 2");
    for v in &map {
        assert_eq!(v.state, VolumeState::Healthy);
        let p = v.primary.as_ref().expect("primary");
        assert_ne!(
            Some(&p.0),
            v.mirror.as_ref(),
            "{} on one server twice",
            v.id
        );
    }
    let mut total = 0;
    for s in &servers {
        let n = replicas_on(s).await;
        assert!(n <= 3, "{} holds {n} replicas, above its 3 slots", s.id);
        total += n;
    }
    assert_eq!(total, 12);
    ctl.stop().await;
    for s in servers {
        s.stop().await;
    }
}

#[tokio::test]
async fn failover_promotes_the_mirror_and_re_mirrors_onto_a_server_with_a_free_slot() {
    let servers = vec![
        storage("s0").await,
        storage("s1").await,
        storage("s2").await,
    ];
    let refs: Vec<&Storage> = servers.iter().collect();
    // 3 servers x 2 slots x 0.34 / 2 = 1 volume: two slots used, four spare.
    let ctl = control(&refs, 2, 0.34).await;
    let map = ctl.volumes().await;
    assert_eq!(map.len(), 1);
    let v = map[0].clone();
    assert_eq!(write(primary(&v), &v.id, 2, 41).await, 204);
    let (old_primary, _) = v.primary.clone().expect("primary");
    let mirror = v.mirror.clone().expect("mirror");

    // The primary's server stops serving.
    let mut servers = servers;
    let pos = servers
        .iter()
        .position(|s| s.id == old_primary)
        .expect("known");
    servers.remove(pos).stop().await;

    let decided = ctl.next(|e| matches!(e, Event::Failover { .. })).await;
    let Event::Failover {
        from, to, outcome, ..
    } = decided
    else {
        unreachable!()
    };
    assert_eq!(from, old_primary);
    assert_eq!(outcome, FailoverOutcome::Remirrored);
    let spare = servers
        .iter()
        .find(|s| s.id != mirror)
        .expect("a third server");
    assert_eq!(to.as_deref(), Some(spare.id.as_str()));
    ctl.next(|e| {
        matches!(e, Event::VolumeChanged { state: VolumeState::Healthy, reason, .. } if reason == "re-mirrored")
    })
    .await;
    let v = ctl.volumes().await[0].clone();
    assert_eq!(
        v.primary.as_ref().map(|p| p.0.as_str()),
        Some(mirror.as_str())
    );
    assert_eq!(v.mirror.as_deref(), Some(spare.id.as_str()));
    assert!(v.epoch >= 2);
    // The acknowledged write survived, and writes are acknowledged again.
    assert_eq!(read(primary(&v), &v.id, 2).await, 41);
    assert_eq!(write(primary(&v), &v.id, 2, 42).await, 204);
    ctl.stop().await;
    for s in servers {
        s.stop().await;
    }
}

#[tokio::test]
async fn failover_without_spare_capacity_leaves_the_volume_stuck_and_refusing_writes() {
    let servers = vec![
        storage("s0").await,
        storage("s1").await,
        storage("s2").await,
    ];
    let refs: Vec<&Storage> = servers.iter().collect();
    // 3 servers x 2 slots, all used: 3 volumes, no spare slot anywhere.
    let ctl = control(&refs, 2, 1.0).await;
    let map = ctl.volumes().await;
    assert_eq!(map.len(), 3);
    let v = map[0].clone();
    assert_eq!(write(primary(&v), &v.id, 0, 7).await, 204);
    let mut servers = servers;
    let victim = v.mirror.clone().expect("mirror");
    let pos = servers.iter().position(|s| s.id == victim).expect("known");
    servers.remove(pos).stop().await;

    let decided = ctl
        .next(|e| matches!(e, Event::Failover { volume, .. } if *volume == v.id))
        .await;
    let Event::Failover {
        outcome, detail, ..
    } = decided
    else {
        unreachable!()
    };
    assert_eq!(outcome, FailoverOutcome::NoCapacity, "{detail}");
    ctl.next(|e| {
        matches!(e, Event::VolumeChanged { volume, state: VolumeState::Stuck, .. } if *volume == v.id)
    })
    .await;
    // Stuck: the survivor serves reads of what was acknowledged but acknowledges no new write.
    let now = ctl
        .volumes()
        .await
        .into_iter()
        .find(|x| x.id == v.id)
        .expect("still mapped");
    assert_eq!(now.state, VolumeState::Stuck);
    assert_eq!(read(primary(&now), &v.id, 0).await, 7);
    assert_eq!(write(primary(&now), &v.id, 0, 8).await, 503);
    ctl.stop().await;
    for s in servers {
        s.stop().await;
    }
}
