//! The DNS role as real clients see it: hickory-resolver and raw DNS messages over UDP and TCP,
//! reqwest against the admin API. Every server binds port 0 on 127.0.0.1 in-process.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use crate::EventSink;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_resolver::Resolver;
use hickory_resolver::config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use outage_lab_proto::EngineEvent as Event;

/// The name these tests count answers for, as the 2012 incident's DNS servers do.
const COLLECTOR_NAME: &str = "collector.lab.internal.";
use outage_lab_proto::wire::{RecordsMsg, SetRecordMsg};
use outage_lab_proto::{HumanDuration, ZONE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use super::{Config, Error, Listeners, run};

/// Upper bound on every network wait in these tests.
const WAIT: Duration = Duration::from_secs(5);

const OLD: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 10);
const NEW: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// A DNS server running on a task of the test's runtime.
struct Running {
    dns: SocketAddr,
    admin: SocketAddr,
    events: Receiver<Event>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), Error>>,
}

impl Running {
    /// Starts a server with `config` and waits for its `Ready` event.
    async fn start(config: Config) -> Self {
        let (udp, tcp) = bind_dns().await;
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (sink, events) = EventSink::channel();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            config,
            Listeners {
                udp,
                tcp,
                admin,
                also: None,
            },
            shutdown.clone(),
            sink,
        ));
        let ready = next_event(&events).await;
        let Event::Ready { role, addrs } = ready else {
            panic!("the first event was not Ready: {ready:?}");
        };
        assert_eq!(role, "dns");
        Self {
            dns: addrs["dns"],
            admin: addrs["admin"],
            events,
            shutdown,
            task,
        }
    }

    /// Starts a server answering `collector` with [`OLD`].
    async fn with_collector() -> Self {
        Self::start(Config {
            records: BTreeMap::from([("collector".to_owned(), vec![OLD])]),
            ..Config::default()
        })
        .await
    }

    /// Starts a server answering `collector` with [`OLD`], every answer with a TTL of `secs`.
    async fn with_collector_ttl(secs: u64) -> Self {
        Self::start(Config {
            records: BTreeMap::from([("collector.lab.internal".to_owned(), vec![OLD])]),
            ttl: HumanDuration::secs(secs),
            ..Config::default()
        })
        .await
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Cancels the server and checks it returns `Ok(())` promptly.
    async fn stop(self) {
        self.shutdown.cancel();
        let result = timeout(WAIT, self.task)
            .await
            .expect("run returned")
            .expect("run did not panic");
        assert!(result.is_ok(), "run failed: {result:?}");
    }
}

/// UDP and TCP on one port: UDP picks it, TCP takes the same; on the rare collision, retry.
async fn bind_dns() -> (UdpSocket, TcpListener) {
    for _ in 0..16 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP");
}

/// The next event the server emits, within [`WAIT`].
async fn next_event(events: &Receiver<Event>) -> Event {
    timeout(WAIT, async {
        loop {
            match events.try_recv() {
                Ok(event) => return event,
                Err(TryRecvError::Empty) => tokio::time::sleep(Duration::from_millis(5)).await,
                Err(TryRecvError::Disconnected) => panic!("the event sink was dropped"),
            }
        }
    })
    .await
    .expect("an event within the wait")
}

#[derive(Clone, Copy, Debug)]
enum Transport {
    Udp,
    Tcp,
}

/// A fresh resolver (so no cache) that asks only `server`, only over `transport`, and never
/// reads the system's configuration or hosts file.
fn resolver(server: SocketAddr, transport: Transport) -> Resolver<TokioRuntimeProvider> {
    let mut ns = match transport {
        Transport::Udp => NameServerConfig::udp(server.ip()),
        Transport::Tcp => NameServerConfig::tcp(server.ip()),
    };
    for connection in &mut ns.connections {
        connection.port = server.port();
    }
    let mut options = ResolverOpts::default();
    options.use_hosts_file = ResolveHosts::Never;
    options.timeout = Duration::from_secs(2);
    options.attempts = 1;
    Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![ns]),
        TokioRuntimeProvider::default(),
    )
    .with_options(options)
    .build()
    .unwrap()
}

/// The IPv4 addresses a fresh resolver gets for `name`.
async fn resolve(
    server: SocketAddr,
    transport: Transport,
    name: &str,
) -> Result<Vec<IpAddr>, NetError> {
    let lookup = timeout(WAIT, resolver(server, transport).lookup_ip(name))
        .await
        .expect("a DNS answer within the wait")?;
    Ok(lookup.iter().collect())
}

/// The zone's SOA serial, as a fresh resolver sees it.
async fn soa_serial(server: SocketAddr, transport: Transport) -> u32 {
    let lookup = timeout(
        WAIT,
        resolver(server, transport).lookup(ZONE, RecordType::SOA),
    )
    .await
    .expect("a DNS answer within the wait")
    .unwrap();
    lookup
        .answers()
        .iter()
        .find_map(|record| match &record.data {
            RData::SOA(soa) => Some(soa.serial),
            _ => None,
        })
        .expect("an SOA in the answer")
}

/// Sends one hand-built query and reads the response, over UDP or TCP (with the 2-byte length
/// prefix of RFC 1035 4.2.2).
async fn raw_query(
    server: SocketAddr,
    transport: Transport,
    name: &str,
    rtype: RecordType,
) -> Message {
    let mut query = Message::query();
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    let bytes = query.to_vec().unwrap();
    let response = timeout(WAIT, async {
        match transport {
            Transport::Udp => {
                let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                socket.send_to(&bytes, server).await.unwrap();
                let mut buf = vec![0u8; 4096];
                let (n, _) = socket.recv_from(&mut buf).await.unwrap();
                buf.truncate(n);
                buf
            }
            Transport::Tcp => {
                let mut stream = TcpStream::connect(server).await.unwrap();
                let len = u16::try_from(bytes.len()).unwrap();
                stream.write_all(&len.to_be_bytes()).await.unwrap();
                stream.write_all(&bytes).await.unwrap();
                let len = stream.read_u16().await.unwrap();
                let mut buf = vec![0u8; usize::from(len)];
                stream.read_exact(&mut buf).await.unwrap();
                buf
            }
        }
    })
    .await
    .expect("a DNS response within the wait");
    let message = Message::from_vec(&response).unwrap();
    assert_eq!(message.id, query.id, "the response answers our query");
    message
}

fn a_records(message: &Message) -> Vec<Ipv4Addr> {
    message
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .build()
        .unwrap()
}

/// `PUT /records/{name}` with `body` (a JSON string, so tests can send anything).
async fn put_raw(
    server: &Running,
    name: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    timeout(
        WAIT,
        http()
            .put(server.url(&format!("/records/{name}")))
            .header("content-type", "application/json")
            .body(body)
            .send(),
    )
    .await
    .expect("an admin answer within the wait")
    .unwrap()
}

async fn put(server: &Running, name: &str, addrs: &[IpAddr]) -> reqwest::Response {
    let body = serde_json::to_vec(&SetRecordMsg {
        addrs: addrs.to_vec(),
    })
    .unwrap();
    put_raw(server, name, body).await
}

/// Status and body text of a response.
async fn status_and_text(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let text = timeout(WAIT, response.text()).await.unwrap().unwrap();
    (status, text)
}

async fn get_records(server: &Running) -> RecordsMsg {
    let response = timeout(WAIT, http().get(server.url("/records")).send())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);
    timeout(WAIT, response.json()).await.unwrap().unwrap()
}

// --- DNS ---------------------------------------------------------------------------------------

#[tokio::test]
async fn ready_names_the_real_dns_and_admin_addresses() {
    let server = Running::with_collector().await;
    assert!(server.dns.ip().is_loopback() && server.dns.port() != 0);
    assert!(server.admin.ip().is_loopback() && server.admin.port() != 0);
    assert_ne!(server.dns, server.admin);
    // Exactly one Ready: nothing else was said.
    assert!(server.events.try_recv().is_err());
    server.stop().await;
}

#[tokio::test]
async fn a_resolver_gets_the_collector_over_udp_and_over_tcp() {
    let server = Running::with_collector().await;
    for transport in [Transport::Udp, Transport::Tcp] {
        assert_eq!(
            resolve(server.dns, transport, COLLECTOR_NAME)
                .await
                .unwrap(),
            vec![IpAddr::V4(OLD)],
            "{transport:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn raw_queries_get_authoritative_answers_with_the_configured_ttl_over_udp_and_tcp() {
    let server = Running::with_collector_ttl(7).await;
    for transport in [Transport::Udp, Transport::Tcp] {
        let response = raw_query(server.dns, transport, COLLECTOR_NAME, RecordType::A).await;
        assert_eq!(
            response.response_code,
            ResponseCode::NoError,
            "{transport:?}"
        );
        assert!(response.authoritative, "{transport:?}: not authoritative");
        assert_eq!(a_records(&response), vec![OLD], "{transport:?}");
        assert!(response.answers.iter().all(|r| r.ttl == 7), "{transport:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_name_in_the_zone_is_nxdomain() {
    let server = Running::with_collector().await;
    for transport in [Transport::Udp, Transport::Tcp] {
        let error = resolve(server.dns, transport, "nosuch.lab.internal.")
            .await
            .expect_err("an unknown name does not resolve");
        assert!(error.is_nx_domain(), "{transport:?}: {error}");

        let response =
            raw_query(server.dns, transport, "nosuch.lab.internal.", RecordType::A).await;
        assert_eq!(
            response.response_code,
            ResponseCode::NXDomain,
            "{transport:?}"
        );
        assert!(response.answers.is_empty());
    }
    server.stop().await;
}

#[tokio::test]
async fn a_name_outside_the_zone_is_refused() {
    let server = Running::with_collector().await;
    let response = raw_query(server.dns, Transport::Udp, "example.com.", RecordType::A).await;
    assert_eq!(response.response_code, ResponseCode::Refused);
    server.stop().await;
}

// --- admin: changing records -------------------------------------------------------------------

#[tokio::test]
async fn an_admin_put_replaces_the_answer_and_bumps_the_serial_as_a_fresh_resolver_sees() {
    let server = Running::with_collector().await;
    assert_eq!(soa_serial(server.dns, Transport::Udp).await, 1);

    let response = put(&server, "collector.lab.internal", &[NEW.into()]).await;
    assert_eq!(response.status(), 200);
    let answered: RecordsMsg = timeout(WAIT, response.json()).await.unwrap().unwrap();
    assert_eq!(answered.serial, 2);
    assert_eq!(answered.records[COLLECTOR_NAME], vec![IpAddr::V4(NEW)]);

    // Replaced, not added to: the old address is gone for every client.
    for transport in [Transport::Udp, Transport::Tcp] {
        assert_eq!(
            resolve(server.dns, transport, COLLECTOR_NAME)
                .await
                .unwrap(),
            vec![IpAddr::V4(NEW)],
            "{transport:?}"
        );
        assert_eq!(soa_serial(server.dns, transport).await, 2, "{transport:?}");
    }
    assert_eq!(get_records(&server).await, answered);

    // A second change, with a relative name and two addresses, bumps it again.
    let response = put(&server, "collector", &[OLD.into(), NEW.into()]).await;
    assert_eq!(response.status(), 200);
    let mut got = resolve(server.dns, Transport::Udp, COLLECTOR_NAME)
        .await
        .unwrap();
    got.sort();
    assert_eq!(got, vec![IpAddr::V4(OLD), IpAddr::V4(NEW)]);
    assert_eq!(soa_serial(server.dns, Transport::Udp).await, 3);
    server.stop().await;
}

#[tokio::test]
async fn an_admin_put_emits_one_dns_record_changed_event() {
    let server = Running::with_collector().await;
    let response = put(&server, "collector.lab.internal.", &[NEW.into()]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        next_event(&server.events).await,
        Event::DnsRecordChanged {
            name: COLLECTOR_NAME.to_owned(),
            addrs: vec![IpAddr::V4(NEW)],
            serial: 2,
        }
    );
    assert!(server.events.try_recv().is_err(), "more than one event");
    server.stop().await;
}

#[tokio::test]
async fn an_admin_put_can_add_a_new_name() {
    let server = Running::with_collector().await;
    let response = put(&server, "storage-7", &[NEW.into()]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        resolve(server.dns, Transport::Tcp, "storage-7.lab.internal.")
            .await
            .unwrap(),
        vec![IpAddr::V4(NEW)]
    );
    let records = get_records(&server).await;
    assert_eq!(
        records.records.keys().collect::<Vec<_>>(),
        vec![COLLECTOR_NAME, "storage-7.lab.internal."]
    );
    server.stop().await;
}

#[tokio::test]
async fn get_records_lists_fully_qualified_names_and_health_is_ok() {
    let server = Running::start(Config {
        records: BTreeMap::from([
            ("collector".to_owned(), vec![OLD]),
            ("old-collector.lab.internal.".to_owned(), vec![OLD, NEW]),
        ]),
        ..Config::default()
    })
    .await;
    let records = get_records(&server).await;
    assert_eq!(records.serial, 1);
    assert_eq!(
        records.records,
        BTreeMap::from([
            (COLLECTOR_NAME.to_owned(), vec![IpAddr::V4(OLD)]),
            (
                "old-collector.lab.internal.".to_owned(),
                vec![IpAddr::V4(OLD), IpAddr::V4(NEW)]
            ),
        ])
    );
    let health = timeout(WAIT, http().get(server.url("/health")).send())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status_and_text(health).await, (200, "ok".to_owned()));
    server.stop().await;
}

// --- admin: rejections -------------------------------------------------------------------------

#[tokio::test]
async fn admin_rejects_a_name_outside_the_zone_and_changes_nothing() {
    let server = Running::with_collector().await;
    for name in [
        "example.com",
        "collector.example.com.",
        "a..b",
        "bad%20name",
    ] {
        let (status, text) = status_and_text(put(&server, name, &[NEW.into()]).await).await;
        assert_eq!(status, 400, "{name}: {text}");
        assert!(!text.is_empty() && !text.contains('\n'), "{name}: {text:?}");
    }
    let (_, text) = status_and_text(put(&server, "example.com", &[NEW.into()]).await).await;
    assert!(text.contains("outside the zone"), "{text}");
    assert_eq!(get_records(&server).await.serial, 1);
    assert!(
        server.events.try_recv().is_err(),
        "a rejected PUT emitted an event"
    );
    server.stop().await;
}

#[tokio::test]
async fn admin_rejects_ipv6_addresses_saying_why() {
    let server = Running::with_collector().await;
    let v6: IpAddr = "::1".parse().unwrap();
    let (status, text) = status_and_text(put(&server, "collector", &[NEW.into(), v6]).await).await;
    assert_eq!(status, 400);
    assert!(text.contains("IPv6"), "{text}");

    assert_eq!(get_records(&server).await.serial, 1);
    assert_eq!(
        resolve(server.dns, Transport::Udp, COLLECTOR_NAME)
            .await
            .unwrap(),
        vec![IpAddr::V4(OLD)]
    );
    server.stop().await;
}

#[tokio::test]
async fn admin_rejects_bad_json_and_bodies_over_64_kib() {
    let server = Running::with_collector().await;
    for body in [
        "{",
        "{\"addrs\": \"127.0.0.1\"}",
        "{\"addrs\": [], \"extra\": 1}",
    ] {
        let status = put_raw(&server, "collector", body).await.status().as_u16();
        assert!(status == 400 || status == 422, "{body}: {status}");
    }
    // Valid JSON, just too big: the limit, not the parser, must refuse it.
    let padding = " ".repeat(64 * 1024);
    let big = format!("{{\"addrs\": [\"{NEW}\"]{padding}}}");
    let status = put_raw(&server, "collector", big).await.status().as_u16();
    assert_eq!(status, 413);
    assert_eq!(get_records(&server).await.serial, 1);
    server.stop().await;
}

#[tokio::test]
async fn admin_answers_404_for_unknown_paths_and_405_for_wrong_methods() {
    let server = Running::with_collector().await;
    let client = http();
    let cases = [
        (client.get(server.url("/nope")), 404),
        (client.get(server.url("/records/a/b")), 404),
        (client.post(server.url("/records")), 405),
        (client.post(server.url("/records/collector")), 405),
        (client.post(server.url("/faults")), 405),
        (client.post(server.url("/health")), 405),
    ];
    for (request, want) in cases {
        let response = timeout(WAIT, request.send()).await.unwrap().unwrap();
        let (status, text) = status_and_text(response).await;
        assert_eq!(status, want, "{text}");
        assert!(!text.is_empty());
    }
    server.stop().await;
}

#[tokio::test]
async fn with_a_token_admin_requires_the_bearer_token_even_from_loopback() {
    let server = Running::start(Config {
        records: BTreeMap::from([("collector".to_owned(), vec![OLD])]),
        admin_token: Some("s3cret".into()),
        ..Config::default()
    })
    .await;
    let body = serde_json::to_vec(&SetRecordMsg {
        addrs: vec![NEW.into()],
    })
    .unwrap();
    let send = |auth: Option<&'static str>| {
        let mut request = http()
            .put(server.url("/records/collector"))
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        async move { timeout(WAIT, request.send()).await.unwrap().unwrap() }
    };
    assert_eq!(send(None).await.status(), 401);
    assert_eq!(send(Some("Bearer wrong")).await.status(), 401);
    assert_eq!(send(Some("Basic s3cret")).await.status(), 401);
    assert_eq!(get_records_with_token(&server).await.serial, 1);
    assert_eq!(send(Some("Bearer s3cret")).await.status(), 200);
    assert_eq!(get_records_with_token(&server).await.serial, 2);
    server.stop().await;
}

async fn get_records_with_token(server: &Running) -> RecordsMsg {
    let response = timeout(
        WAIT,
        http()
            .get(server.url("/records"))
            .bearer_auth("s3cret")
            .send(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(response.status(), 200);
    timeout(WAIT, response.json()).await.unwrap().unwrap()
}

// --- config and lifecycle ----------------------------------------------------------------------

#[test]
fn config_parses_with_documented_defaults_and_rejects_unknown_fields() {
    let config: Config = serde_json::from_str("{}").unwrap();
    assert_eq!(config, Config::default());
    assert_eq!(config.ttl, HumanDuration::secs(1));
    assert!(config.records.is_empty() && config.admin_token.is_none());

    let config: Config = serde_json::from_str(
        r#"{"records":{"collector":["127.0.0.10"]},"ttl":"30s","admin_token":"t"}"#,
    )
    .unwrap();
    assert_eq!(config.records["collector"], vec![OLD]);
    assert_eq!(config.ttl, HumanDuration::secs(30));
    // The harness writes configs with serde too: they must read back the same.
    let again: Config = serde_json::from_str(&serde_json::to_string(&config).unwrap()).unwrap();
    assert_eq!(again, config);

    for bad in [
        r#"{"recrods":{}}"#,
        r#"{"ttl":"1"}"#,
        r#"{"records":{"collector":["::1"]}}"#,
    ] {
        assert!(serde_json::from_str::<Config>(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_admin_token_never_appears_in_debug_output() {
    let config = Config {
        admin_token: Some("s3cret".into()),
        ..Config::default()
    };
    let shown = format!("{config:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(shown.contains("redacted"), "{shown}");
}

#[test]
fn sub_second_ttls_round_up_to_whole_seconds() {
    assert_eq!(super::ttl_secs(HumanDuration::millis(0)), 0);
    assert_eq!(super::ttl_secs(HumanDuration::millis(500)), 1);
    assert_eq!(super::ttl_secs(HumanDuration::secs(1)), 1);
    assert_eq!(super::ttl_secs(HumanDuration::millis(1500)), 2);
    assert_eq!(
        super::ttl_secs(HumanDuration(Duration::from_secs(u64::MAX / 2000))),
        super::MAX_TTL_SECS
    );
}

#[tokio::test]
async fn an_invalid_config_is_refused_before_serving() {
    let cases = [
        (
            BTreeMap::from([("example.com".to_owned(), vec![OLD])]),
            None,
        ),
        (BTreeMap::from([("collector".to_owned(), vec![])]), None),
        (
            BTreeMap::from([
                ("collector".to_owned(), vec![OLD]),
                ("collector.lab.internal.".to_owned(), vec![NEW]),
            ]),
            None,
        ),
        (BTreeMap::new(), Some(String::new())),
    ];
    for (records, admin_token) in cases {
        let (udp, tcp) = bind_dns().await;
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (sink, events) = EventSink::channel();
        let config = Config {
            records,
            admin_token,
            ..Config::default()
        };
        let shown = format!("{config:?}");
        let result = timeout(
            WAIT,
            run(
                config,
                Listeners {
                    udp,
                    tcp,
                    admin,
                    also: None,
                },
                CancellationToken::new(),
                sink,
            ),
        )
        .await
        .expect("run returned at once");
        assert!(
            matches!(result, Err(Error::InvalidConfig(_))),
            "{shown}: {result:?}"
        );
        assert!(events.try_recv().is_err(), "{shown}: announced Ready");
    }
}

#[tokio::test]
async fn shutdown_returns_promptly_even_with_clients_connected() {
    let server = Running::with_collector().await;
    // An idle DNS-over-TCP connection and a kept-alive HTTP connection, both open at shutdown.
    let _dns_conn = timeout(WAIT, TcpStream::connect(server.dns))
        .await
        .unwrap()
        .unwrap();
    let client = http();
    let response = timeout(WAIT, client.get(server.url("/health")).send())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), 200);

    let started = Instant::now();
    server.shutdown.cancel();
    let result = timeout(Duration::from_secs(3), server.task)
        .await
        .expect("run returned after shutdown")
        .expect("run did not panic");
    assert!(result.is_ok(), "{result:?}");
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "shutdown took {took:?}");

    // The ports are closed: nobody answers any more.
    assert!(
        timeout(WAIT, TcpStream::connect(server.admin))
            .await
            .unwrap()
            .is_err(),
        "the admin port still accepts connections"
    );
}

// --- Faults: an empty name, a removed name, SERVFAIL, late answers --------------------------------

/// `method` on an admin `path` with a JSON `body` (none for `None`): status and text.
async fn admin(server: &Running, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = http().request(method, server.url(path));
    if let Some(body) = body {
        let json = "application/json";
        request = (request.header("content-type", json)).body(body.to_owned());
    }
    let response = timeout(WAIT, request.send()).await.unwrap().unwrap();
    status_and_text(response).await
}

#[tokio::test]
async fn an_emptied_name_answers_nodata_with_the_zones_negative_ttl() {
    let server = Running::with_collector_ttl(7).await;
    let (status, text) = status_and_text(put(&server, "collector", &[]).await).await;
    assert_eq!(status, 200, "{text}");
    assert!(get_records(&server).await.records[COLLECTOR_NAME].is_empty());
    for transport in [Transport::Udp, Transport::Tcp] {
        let response = raw_query(server.dns, transport, COLLECTOR_NAME, RecordType::A).await;
        assert_eq!(
            response.response_code,
            ResponseCode::NoError,
            "{transport:?}"
        );
        assert!(response.answers.is_empty(), "{transport:?}: {response:?}");
        let soa = (response.authorities.iter())
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some(soa.minimum),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{transport:?}: no SOA in the authority: {response:?}"));
        assert_eq!(soa, 7, "the negative-caching TTL is the zone's");
    }
    let Event::DnsRecordChanged { addrs, .. } = next_event(&server.events).await else {
        panic!("no record change told");
    };
    assert!(addrs.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn a_removed_name_is_nxdomain_and_removing_it_again_is_404() {
    let server = Running::with_collector().await;
    let (status, text) = admin(&server, "DELETE", "/records/collector", None).await;
    assert_eq!(status, 200, "{text}");
    let response = raw_query(server.dns, Transport::Udp, COLLECTOR_NAME, RecordType::A).await;
    assert_eq!(response.response_code, ResponseCode::NXDomain);
    assert_eq!(get_records(&server).await.serial, 2);
    let Event::DnsRecordRemoved { name, serial } = next_event(&server.events).await else {
        panic!("no removal told");
    };
    assert_eq!((name.as_str(), serial), (COLLECTOR_NAME, 2));
    let (status, text) = admin(&server, "DELETE", "/records/collector", None).await;
    assert_eq!(status, 404, "{text}");
    server.stop().await;
}

#[tokio::test]
async fn a_servfail_fault_fails_the_name_until_it_is_deleted_and_leaves_the_others() {
    let server = Running::start(Config {
        records: BTreeMap::from([
            ("collector".to_owned(), vec![OLD]),
            ("other".to_owned(), vec![NEW]),
        ]),
        ..Config::default()
    })
    .await;
    let servfail = r#"{"answer":"servfail"}"#;
    let (status, text) = admin(&server, "PUT", "/faults/collector", Some(servfail)).await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains(r#""collector.lab.internal.":{"answer":"servfail"}"#),
        "{text}"
    );
    for transport in [Transport::Udp, Transport::Tcp] {
        let response = raw_query(server.dns, transport, COLLECTOR_NAME, RecordType::A).await;
        assert_eq!(
            response.response_code,
            ResponseCode::ServFail,
            "{transport:?}"
        );
    }
    let other = raw_query(
        server.dns,
        Transport::Udp,
        "other.lab.internal.",
        RecordType::A,
    )
    .await;
    assert_eq!(
        a_records(&other),
        vec![NEW],
        "a name without a fault answers as before"
    );
    let Event::DnsFaultChanged { fault, .. } = next_event(&server.events).await else {
        panic!("no fault told");
    };
    assert_eq!(fault, Some(outage_lab_proto::wire::DnsFault::Servfail));

    let (status, _) = admin(&server, "DELETE", "/faults/collector", None).await;
    assert_eq!(status, 200);
    let response = raw_query(server.dns, Transport::Udp, COLLECTOR_NAME, RecordType::A).await;
    assert_eq!(a_records(&response), vec![OLD]);
    let (status, _) = admin(&server, "DELETE", "/faults/collector", None).await;
    assert_eq!(status, 404, "no fault left to delete");
    server.stop().await;
}

#[tokio::test]
async fn a_delay_fault_holds_the_answer_back_and_then_gives_it() {
    let server = Running::with_collector().await;
    let delay = r#"{"answer":"delay","by":"600ms"}"#;
    let (status, text) = admin(&server, "PUT", "/faults/collector", Some(delay)).await;
    assert_eq!(status, 200, "{text}");
    let asked = Instant::now();
    let response = raw_query(server.dns, Transport::Udp, COLLECTOR_NAME, RecordType::A).await;
    assert!(
        asked.elapsed() >= Duration::from_millis(600),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(a_records(&response), vec![OLD]);
    server.stop().await;
}

#[tokio::test]
async fn a_fault_out_of_bounds_or_misspelled_is_refused_saying_why() {
    let server = Running::with_collector().await;
    let long = r#"{"answer":"delay","by":"2m"}"#;
    let (status, text) = admin(&server, "PUT", "/faults/collector", Some(long)).await;
    assert_eq!(status, 400);
    assert!(text.contains("longer than the 60s"), "{text}");
    let unknown = r#"{"answer":"refuse"}"#;
    let (status, _) = admin(&server, "PUT", "/faults/collector", Some(unknown)).await;
    assert_eq!(status, 422);
    let (status, text) = admin(
        &server,
        "PUT",
        "/faults/example.com",
        Some(r#"{"answer":"servfail"}"#),
    )
    .await;
    assert_eq!(status, 400);
    assert!(text.contains("outside the zone"), "{text}");
    let (_, text) = admin(&server, "GET", "/faults", None).await;
    assert_eq!(text, r#"{"faults":{}}"#);
    server.stop().await;
}

#[tokio::test]
async fn only_the_counted_name_has_its_answers_told_by_address() {
    let server = Running::start(Config {
        records: BTreeMap::from([
            ("collector".to_owned(), vec![OLD]),
            ("other".to_owned(), vec![NEW]),
        ]),
        counted: Some("collector".to_owned()),
        ..Config::default()
    })
    .await;
    for _ in 0..3 {
        resolve(server.dns, Transport::Udp, COLLECTOR_NAME)
            .await
            .expect("an answer");
    }
    resolve(server.dns, Transport::Udp, "other.lab.internal.")
        .await
        .expect("an answer");
    let told = next_event(&server.events).await;
    let Event::DnsAnswers { name, answers } = told else {
        panic!("not the answers: {told:?}");
    };
    assert_eq!(name, COLLECTOR_NAME);
    assert_eq!(answers, BTreeMap::from([(IpAddr::V4(OLD), 3)]));
    server.stop().await;
}

#[tokio::test]
async fn a_server_that_counts_no_name_tells_no_answers() {
    let server = Running::with_collector().await;
    resolve(server.dns, Transport::Udp, COLLECTOR_NAME)
        .await
        .expect("an answer");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        server.events.try_recv().is_err(),
        "a server with nothing counted told something"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_counted_name_outside_the_zone_is_refused_before_anything_is_served() {
    let config = Config {
        counted: Some("collector.example.com.".to_owned()),
        ..Config::default()
    };
    let (udp, tcp) = bind_dns().await;
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let listeners = Listeners {
        udp,
        tcp,
        admin,
        also: None,
    };
    let refused = run(
        config,
        listeners,
        CancellationToken::new(),
        EventSink::discard(),
    )
    .await;
    let Err(Error::InvalidConfig(why)) = refused else {
        panic!("served a counted name outside the zone: {refused:?}");
    };
    assert!(why.contains("counted \"collector.example.com.\""), "{why}");
}
