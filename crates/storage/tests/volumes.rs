//! Volume replicas on real storage servers in this process: mirrored writes, epochs, copies.
//!
//! Every server here gets a 1 MiB budget, which this test process's own memory already exceeds,
//! so no cache ever grows: every block access is a disk access of `miss_penalty`, and servers
//! in one process cannot fight over cache sizing.

use std::net::SocketAddr;
use std::time::Duration;

use outage_lab_ebs_events::wire::{
    AssignMsg, BlockValue, CopyMsg, MirrorWriteMsg, ReplicaMsg, ReplicaRole,
};
use outage_lab_proto::testing::{RunningRole, start_role};
use outage_lab_proto::{ByteSize, HumanDuration};
use outage_lab_storage::{Config, Health, Listeners, run};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(10);

struct Server {
    role: RunningRole<outage_lab_storage::Error, outage_lab_ebs_events::Event>,
}

fn config(probe_blocks: u64) -> Config {
    let mut c = Config::new("s-test");
    c.budget = ByteSize::mib(1);
    c.working_set = ByteSize::kib(64);
    c.miss_penalty = HumanDuration::millis(1);
    c.request_deadline = HumanDuration::millis(500);
    c.replica_size = ByteSize::kib(64);
    c.probe_blocks = probe_blocks;
    c
}

impl Server {
    /// Starts one on loopback; serving once it says `Ready`.
    async fn start(config: Config) -> Self {
        let role = start_role("storage", "http", |http, shutdown, sink| {
            run(config, Listeners { http }, shutdown, sink)
        })
        .await;
        Self { role }
    }

    fn addr(&self) -> SocketAddr {
        self.role.addr
    }

    fn url(&self, path: &str) -> String {
        self.role.url(path)
    }

    async fn place(&self, id: &str, epoch: u64, role: ReplicaRole, mirror: Option<SocketAddr>) {
        let msg = ReplicaMsg {
            epoch,
            role,
            mirror,
            blocks: vec![0; 8],
        };
        let status = put(&self.url(&format!("/volumes/{id}")), &msg).await;
        assert!(status == 201 || status == 204, "placing {id}: {status}");
    }

    async fn write(&self, id: &str, block: u32, value: u64) -> u16 {
        put(
            &self.url(&format!("/volumes/{id}/blocks/{block}")),
            &BlockValue { value },
        )
        .await
    }

    async fn read(&self, id: &str, block: u32) -> Result<u64, u16> {
        let resp = client()
            .get(self.url(&format!("/volumes/{id}/blocks/{block}")))
            .send()
            .await
            .expect("read request");
        if resp.status().is_success() {
            Ok(resp.json::<BlockValue>().await.expect("value").value)
        } else {
            Err(resp.status().as_u16())
        }
    }

    async fn assign(
        &self,
        id: &str,
        epoch: u64,
        role: ReplicaRole,
        mirror: Option<SocketAddr>,
    ) -> u16 {
        post(
            &self.url(&format!("/volumes/{id}/assign")),
            &AssignMsg {
                epoch,
                role,
                mirror,
            },
        )
        .await
    }

    async fn health(&self) -> Health {
        client()
            .get(self.url("/health"))
            .send()
            .await
            .expect("health")
            .json()
            .await
            .expect("health JSON")
    }

    async fn stop(self) {
        self.role.stop(WAIT).await.expect("clean stop");
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .build()
        .expect("client")
}

async fn put<T: serde::Serialize>(url: &str, body: &T) -> u16 {
    client()
        .put(url)
        .json(body)
        .send()
        .await
        .expect("PUT")
        .status()
        .as_u16()
}

async fn post<T: serde::Serialize>(url: &str, body: &T) -> u16 {
    client()
        .post(url)
        .json(body)
        .send()
        .await
        .expect("POST")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_write_is_acknowledged_once_the_mirror_holds_it_and_the_mirror_can_take_over() {
    let (a, b) = (
        Server::start(config(1)).await,
        Server::start(config(1)).await,
    );
    b.place("v1", 1, ReplicaRole::Mirror, None).await;
    a.place("v1", 1, ReplicaRole::Primary, Some(b.addr())).await;
    assert_eq!(a.write("v1", 3, 42).await, 204);
    assert_eq!(a.read("v1", 3).await, Ok(42));
    // A mirror serves no customer reads...
    assert_eq!(b.read("v1", 3).await, Err(409));
    // ...until control promotes it: then it has every acknowledged write.
    assert_eq!(b.assign("v1", 2, ReplicaRole::Primary, None).await, 204);
    assert_eq!(b.read("v1", 3).await, Ok(42));
    assert_eq!(b.health().await.replicas, 1);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_write_whose_mirror_dies_mid_write_is_not_acknowledged() {
    let a = Server::start(config(1)).await;
    // The "mirror" accepts the forwarded write, reads it, then dies without answering.
    let dying = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mirror = dying.local_addr().expect("addr");
    let killer = tokio::spawn(async move {
        let (mut conn, _) = dying.accept().await.expect("accept");
        let mut buf = vec![0; 4096];
        let _ = conn.read(&mut buf).await;
        drop(conn);
        drop(dying);
    });
    a.place("v1", 1, ReplicaRole::Primary, Some(mirror)).await;
    assert_eq!(
        a.write("v1", 0, 7).await,
        503,
        "acknowledged without a mirror"
    );
    killer.await.expect("mirror task");
    // Not stored either: the value is still the old one.
    assert_eq!(a.read("v1", 0).await, Ok(0));
    // And a mirror that is simply gone refuses every write the same way.
    assert_eq!(a.write("v1", 0, 8).await, 503);
    assert_eq!(a.read("v1", 0).await, Ok(0));
    a.stop().await;
}

#[tokio::test]
async fn a_primary_replaced_by_a_failover_cannot_get_a_write_acknowledged() {
    let (a, b) = (
        Server::start(config(1)).await,
        Server::start(config(1)).await,
    );
    b.place("v1", 1, ReplicaRole::Mirror, None).await;
    a.place("v1", 1, ReplicaRole::Primary, Some(b.addr())).await;
    assert_eq!(a.write("v1", 1, 1).await, 204);
    // Control fails the volume over to b (epoch 2); a never hears of it.
    assert_eq!(b.assign("v1", 2, ReplicaRole::Primary, None).await, 204);
    assert_eq!(
        a.write("v1", 1, 2).await,
        503,
        "the old primary's write was acknowledged"
    );
    // The new primary has no mirror yet: it refuses writes rather than hold them alone.
    assert_eq!(b.write("v1", 1, 3).await, 503);
    assert_eq!(b.read("v1", 1).await, Ok(1));
    // A forwarded write of the old epoch is refused outright.
    let stale = MirrorWriteMsg { epoch: 1, value: 9 };
    assert_eq!(put(&b.url("/volumes/v1/mirror/1"), &stale).await, 409);
    // Nor can an older epoch be placed over a newer replica.
    let old = ReplicaMsg {
        epoch: 1,
        role: ReplicaRole::Mirror,
        mirror: None,
        blocks: vec![0; 8],
    };
    assert_eq!(put(&b.url("/volumes/v1"), &old).await, 409);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_copy_gives_the_new_mirror_every_block_and_writes_flow_to_it() {
    let (a, c) = (
        Server::start(config(1)).await,
        Server::start(config(1)).await,
    );
    let gone: SocketAddr = "127.0.0.1:9".parse().expect("addr");
    a.place("v1", 1, ReplicaRole::Primary, Some(gone)).await;
    assert_eq!(a.assign("v1", 2, ReplicaRole::Primary, None).await, 204);
    let copy = CopyMsg {
        epoch: 2,
        target: c.addr(),
    };
    assert_eq!(post(&a.url("/volumes/v1/copy"), &copy).await, 204);
    assert_eq!(a.write("v1", 5, 55).await, 204);
    // c now holds the volume at epoch 2: promote it and read what a acknowledged.
    assert_eq!(c.assign("v1", 3, ReplicaRole::Primary, None).await, 204);
    assert_eq!(c.read("v1", 5).await, Ok(55));
    // A copy asked at the wrong epoch is refused.
    let wrong = CopyMsg {
        epoch: 1,
        target: c.addr(),
    };
    assert_eq!(post(&a.url("/volumes/v1/copy"), &wrong).await, 409);
    a.stop().await;
    c.stop().await;
}

#[tokio::test]
async fn a_probe_fails_when_its_reads_cannot_finish_within_the_deadline() {
    let mut slow = config(16);
    slow.miss_penalty = HumanDuration::millis(10);
    slow.request_deadline = HumanDuration::millis(50);
    let s = Server::start(slow).await;
    // 16 uncached reads of 10 ms cannot fit in 50 ms, even on an idle disk.
    let resp = client().get(s.url("/probe")).send().await.expect("probe");
    assert_eq!(resp.status(), 503);
    s.stop().await;
    let fast = Server::start(config(1)).await;
    let resp = client()
        .get(fast.url("/probe"))
        .send()
        .await
        .expect("probe");
    assert_eq!(resp.status(), 200);
    fast.stop().await;
}

#[tokio::test]
async fn bad_volume_requests_are_refused_without_harm() {
    let a = Server::start(config(1)).await;
    assert_eq!(a.write("nope", 0, 1).await, 404);
    assert_eq!(a.assign("nope", 1, ReplicaRole::Primary, None).await, 404);
    let too_big = ReplicaMsg {
        epoch: 1,
        role: ReplicaRole::Mirror,
        mirror: None,
        blocks: vec![0; 100_000],
    };
    assert_eq!(put(&a.url("/volumes/v1"), &too_big).await, 400);
    let bad_id = ReplicaMsg {
        epoch: 1,
        role: ReplicaRole::Mirror,
        mirror: None,
        blocks: vec![0; 4],
    };
    assert_eq!(put(&a.url("/volumes/..%2Fx"), &bad_id).await, 400);
    a.place("v1", 1, ReplicaRole::Primary, None).await;
    assert_eq!(a.read("v1", 8).await, Err(404), "block past the end");
    a.stop().await;
}
