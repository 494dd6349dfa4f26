//! The `dns` role: an authoritative DNS server for `lab.internal.` whose A records change at run
//! time. Several run per scenario; they are the incident's "internal DNS servers", and the harness
//! updates only some of them, which is how some agents in 2012 kept the address of a collector
//! that no longer existed.
//!
//! * **DNS** over UDP and TCP, served by hickory-server from an in-memory zone: an SOA (serial 1
//!   at start) and the configured A records, every one with the configured TTL. A name not in
//!   the zone is `NXDOMAIN`, a name in it without addresses `NODATA`; a name outside it is
//!   `REFUSED`. A name with a fault on answers `SERVFAIL`, or late.
//! * **Admin API** (axum) on its own listener: `GET /health`, `GET /records`,
//!   `PUT /records/{name}`, which replaces the name's whole A record set (maybe with none), bumps
//!   the SOA serial and emits [`Event::DnsRecordChanged`]; `DELETE /records/{name}`; the faults
//!   under `/faults`. Routes, errors and access rules are listed in the `admin` module; in short,
//!   without [`Config::admin_token`] only loopback clients may use it.
//!
//! Once both are serving, [`run`] logs the real addresses on stderr and emits one
//! [`Event::Ready`] with `role: "dns"` and `addrs: {"dns": <UDP address>, "admin": <admin
//! address>}`. It stops when the shutdown token is cancelled.

mod admin;
pub mod client;
mod faults;

pub use faults::MAX_DELAY as MAX_FAULT_DELAY;
mod metrics;
mod zone;

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::Name;
use hickory_server::Server;
use hickory_server::net::NetError;
use hickory_server::zone_handler::Catalog;
use outage_lab_proto::EngineEvent as Event;
use outage_lab_proto::server::HttpServer;

/// Where a DNS server tells what it does: the engine's vocabulary, which every incident's holds.
pub type EventSink = outage_lab_proto::EventSink<Event>;
use outage_lab_proto::{HumanDuration, ZONE};
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

/// How long a DNS-over-TCP connection may stay silent before the server closes it.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Responses queued per DNS-over-TCP connection (hickory's own default).
const TCP_RESPONSE_BUFFER: usize = 32;

/// How long the DNS tasks and in-flight admin requests get to finish after shutdown is asked for,
/// before `run` returns anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Largest TTL DNS allows (RFC 2181: a TTL is 31 bits).
const MAX_TTL_SECS: u32 = i32::MAX as u32;

/// Behaviour of one DNS server.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Initial A records: name to addresses. A name without a dot is relative to the zone
    /// (`collector` is `collector.lab.internal.`); a name with a dot is fully qualified, trailing
    /// dot optional (`collector.lab.internal` or `collector.lab.internal.`). Every name must be in
    /// `lab.internal.` and have at least one address.
    #[serde(default = "default_records")]
    pub records: BTreeMap<String, Vec<Ipv4Addr>>,
    /// TTL served on every A record (and the SOA's negative-caching TTL): how long a resolver may
    /// keep an answer. DNS counts whole seconds, so a fraction of a second is rounded up.
    #[serde(default = "default_ttl")]
    pub ttl: HumanDuration,
    /// If set, admin requests must carry `Authorization: Bearer <token>` (from any peer); if
    /// unset, only loopback peers may use the admin API.
    #[serde(default = "default_admin_token")]
    pub admin_token: Option<String>,
    /// A name whose answers this server counts, by address answered (`dns_answers` events, and
    /// `/metrics`): what a program the lab did not write was told. Named as in `records`. None:
    /// nothing is counted.
    #[serde(default)]
    pub counted: Option<String>,
}

fn default_records() -> BTreeMap<String, Vec<Ipv4Addr>> {
    BTreeMap::new()
}

fn default_ttl() -> HumanDuration {
    HumanDuration::secs(1)
}

fn default_admin_token() -> Option<String> {
    None
}

impl Default for Config {
    /// No records, a 1 s TTL, loopback-only admin.
    fn default() -> Self {
        Self {
            records: default_records(),
            ttl: default_ttl(),
            admin_token: default_admin_token(),
            counted: None,
        }
    }
}

impl fmt::Debug for Config {
    /// Like a derived `Debug`, but the admin token is never printed (configs end up in logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("records", &self.records)
            .field("ttl", &self.ttl)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("counted", &self.counted)
            .finish()
    }
}

/// The sockets the server runs on, bound by the caller (so tests can bind port 0 and the harness
/// can pick the address).
#[derive(Debug)]
pub struct Listeners {
    /// DNS over UDP. Its address is the one announced as `dns` in `Event::Ready`.
    pub udp: UdpSocket,
    /// DNS over TCP; by convention on the same address and port as `udp`.
    pub tcp: TcpListener,
    /// The admin HTTP API.
    pub admin: TcpListener,
    /// The same zone on a second address, UDP and TCP (the harness binds port 53 here when a
    /// program resolves through `/etc/resolv.conf`, which cannot name a port). Announced as
    /// `dns_also` in `Event::Ready`.
    pub also: Option<(UdpSocket, TcpListener)>,
}

/// Why the DNS role could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot be served (a name outside the zone, an empty address set, an
    /// empty token, ...).
    #[error("invalid dns config: {0}")]
    InvalidConfig(String),
    /// A listener's local address could not be read.
    #[error("failed to read the local address of the {listener} listener")]
    LocalAddr {
        /// Which listener: `udp`, `tcp` or `admin`.
        listener: &'static str,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The DNS server (its UDP or TCP task) failed.
    #[error("the DNS server on {addr} failed")]
    Dns {
        /// The DNS (UDP) address.
        addr: SocketAddr,
        /// What hickory said.
        #[source]
        source: NetError,
    },
    /// The admin HTTP server failed.
    #[error("the admin API on {addr} failed")]
    Admin {
        /// The admin address.
        addr: SocketAddr,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
}

/// Serves DNS and the admin API on `listeners` until `shutdown` is cancelled, then stops both
/// (hickory's graceful shutdown, axum's graceful shutdown) within about a second and returns
/// `Ok(())`.
///
/// Before serving it checks `config`; a bad config is [`Error::InvalidConfig`] and nothing is
/// served. Once serving it logs the real addresses and emits exactly one [`Event::Ready`]; every
/// admin change emits one [`Event::DnsRecordChanged`].
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
    events: EventSink,
) -> Result<(), Error> {
    let records = initial_records(&config.records)?;
    check_admin_token(config.admin_token.as_deref())?;
    let ttl = ttl_secs(config.ttl);
    let dns_addr = local_addr("udp", listeners.udp.local_addr())?;
    let tcp_addr = local_addr("tcp", listeners.tcp.local_addr())?;
    let admin_addr = local_addr("admin", listeners.admin.local_addr())?;

    let zone = Arc::new(zone::Zone::new(&records, ttl));
    let initial_serial = zone.snapshot().await.serial;
    let counted = counted_name(config.counted.as_deref())?;
    let metrics = Arc::new(metrics::Metrics::new(initial_serial, counted));
    let (mut server, also_addr) = dns_server(
        &zone,
        &metrics,
        listeners.udp,
        listeners.tcp,
        listeners.also,
    )?;

    // Our own token for the admin server: cancelled by the caller's token, and by us if the DNS
    // server fails, without cancelling anything of the caller's.
    let stop = shutdown.child_token();
    tokio::spawn(metrics::tell_answers(
        Arc::clone(&metrics),
        events.clone(),
        stop.clone(),
    ));
    let mut admin = serve_admin(
        listeners.admin,
        zone,
        metrics,
        &events,
        config.admin_token,
        &stop,
    );

    // Both servers run on bound sockets: a query or request that arrives now waits in the
    // kernel's queue until the tasks above first poll, so the server is ready as of here.
    tracing::info!(
        "listening for DNS on {dns_addr} (UDP) and {tcp_addr} (TCP), zone {ZONE}, ttl {ttl}s"
    );
    tracing::info!("admin API on http://{admin_addr}");
    events.emit(Event::Ready {
        role: "dns".into(),
        addrs: ready_addrs(dns_addr, admin_addr, also_addr),
    });

    let ended = first_end(&stop, &mut server, &mut admin).await;
    stop.cancel();
    let outcome = wind_down(ended, server, admin, dns_addr, admin_addr).await;
    // An error is the caller's to report (the binary prints it as its last line).
    if outcome.is_ok() {
        tracing::info!("stopped");
    }
    outcome
}

/// Refuses an admin token that is set but blank: loopback-only admin is asked for by leaving
/// the token out.
fn check_admin_token(token: Option<&str>) -> Result<(), Error> {
    if token.is_some_and(|t| t.trim().is_empty()) {
        return Err(Error::InvalidConfig(
            "admin_token is empty; omit it to allow loopback clients only".into(),
        ));
    }
    Ok(())
}

/// A listener's local address, or [`Error::LocalAddr`] naming the `listener`.
fn local_addr(
    listener: &'static str,
    result: std::io::Result<SocketAddr>,
) -> Result<SocketAddr, Error> {
    result.map_err(|source| Error::LocalAddr { listener, source })
}

/// What answers a query: its faults first (a name with one answers as it says), then the
/// zone's catalog, counted.
type DnsHandler = faults::Faulty<metrics::Counting<Catalog>>;

/// The DNS server answering from `zone` and counting into `metrics`, with the UDP and TCP
/// sockets registered, and the second pair too if there is one; returns that pair's UDP address.
fn dns_server(
    zone: &Arc<zone::Zone>,
    metrics: &Arc<metrics::Metrics>,
    udp: UdpSocket,
    tcp: TcpListener,
    also: Option<(UdpSocket, TcpListener)>,
) -> Result<(Server<DnsHandler>, Option<SocketAddr>), Error> {
    let mut server = Server::new(faults::Faulty {
        inner: metrics::Counting {
            inner: zone.catalog(),
            metrics: Arc::clone(metrics),
            zone: Arc::clone(zone),
        },
        faults: Arc::clone(&zone.faults),
    });
    server.register_socket(udp);
    server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
    let mut also_addr = None;
    if let Some((udp, tcp)) = also {
        also_addr = Some(local_addr("udp", udp.local_addr())?);
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
    }
    Ok((server, also_addr))
}

/// The admin API's routes (records and `/metrics`) over `zone`.
fn admin_app(
    zone: Arc<zone::Zone>,
    metrics: &Arc<metrics::Metrics>,
    events: &EventSink,
    token: Option<String>,
) -> axum::Router {
    let metrics_routes = Arc::clone(metrics).router(Arc::clone(&zone));
    admin::router(Arc::new(admin::Admin {
        zone,
        events: events.clone(),
        token,
        updates: tokio::sync::Mutex::new(()),
    }))
    .merge(metrics_routes)
}

/// The admin API [`run`] serves, over a fresh zone made from `config` (checked as `run` checks
/// it), without the DNS server: for the fuzz targets and tests that send requests straight to
/// the router (`tower::ServiceExt::oneshot`). Like `run`'s, each request needs the peer's
/// address as an `axum::extract::ConnectInfo<SocketAddr>` extension (the access check reads
/// it); a request without one is a server error.
pub async fn admin_routes(config: &Config, events: EventSink) -> Result<axum::Router, Error> {
    let records = initial_records(&config.records)?;
    check_admin_token(config.admin_token.as_deref())?;
    let zone = Arc::new(zone::Zone::new(&records, ttl_secs(config.ttl)));
    let counted = counted_name(config.counted.as_deref())?;
    let metrics = Arc::new(metrics::Metrics::new(zone.snapshot().await.serial, counted));
    Ok(admin_app(
        zone,
        &metrics,
        &events,
        config.admin_token.clone(),
    ))
}

/// Starts the admin API (records and `/metrics`) on `listener`, stopping when `stop` is
/// cancelled.
fn serve_admin(
    listener: TcpListener,
    zone: Arc<zone::Zone>,
    metrics: Arc<metrics::Metrics>,
    events: &EventSink,
    token: Option<String>,
    stop: &CancellationToken,
) -> HttpServer {
    let app = admin_app(zone, &metrics, events, token);
    HttpServer::spawn(
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        ),
        stop,
    )
}

/// The addresses [`Event::Ready`] announces: `dns` (UDP), `admin`, and `dns_also` when the zone
/// is served on a second address.
fn ready_addrs(
    dns_addr: SocketAddr,
    admin_addr: SocketAddr,
    also_addr: Option<SocketAddr>,
) -> BTreeMap<String, SocketAddr> {
    let mut addrs = BTreeMap::from([
        ("dns".to_owned(), dns_addr),
        ("admin".to_owned(), admin_addr),
    ]);
    if let Some(also_addr) = also_addr {
        addrs.insert("dns_also".to_owned(), also_addr);
    }
    addrs
}

/// Waits for the shutdown, or for one of the servers to stop on its own (which is a failure:
/// neither stops before it is asked to), and says which came first.
async fn first_end<T: hickory_server::server::RequestHandler>(
    stop: &CancellationToken,
    server: &mut Server<T>,
    admin: &mut HttpServer,
) -> Ended {
    tokio::select! {
        // Checked first: the admin server stops gracefully on the same token, and its stop must
        // not be mistaken for a failure when both are ready at once.
        biased;
        () = stop.cancelled() => Ended::Asked,
        result = server.block_until_done() => Ended::Dns(result),
        source = admin.stopped_unasked() => Ended::Admin(source),
    }
}

/// Why the two servers of [`run`] stop: asked to, or one of them ended on its own (a failure:
/// neither stops before it is asked to).
enum Ended {
    Asked,
    Dns(Result<(), NetError>),
    Admin(std::io::Error),
}

/// Stops what is still running once `ended` says why, within [`DRAIN_TIMEOUT`], and says how
/// the run went.
async fn wind_down<T: hickory_server::server::RequestHandler>(
    ended: Ended,
    mut server: Server<T>,
    admin: HttpServer,
    dns_addr: SocketAddr,
    admin_addr: SocketAddr,
) -> Result<(), Error> {
    match ended {
        Ended::Asked => {
            tracing::info!("stopping");
            // Stop both at once, under one deadline. The DNS tasks end as soon as they see the
            // cancellation; the admin server waits for in-flight requests. hickory reports a
            // listener task that failed earlier (while its sibling kept serving) only here, so
            // such a failure still makes `run` return an error. Running out of time drops the
            // admin server, which aborts it.
            let both = async {
                let (dns, admin) =
                    tokio::join!(server.shutdown_gracefully(), admin.drain(DRAIN_TIMEOUT));
                dns.map_err(|source| Error::Dns {
                    addr: dns_addr,
                    source,
                })?;
                admin.map_err(|source| Error::Admin {
                    addr: admin_addr,
                    source,
                })
            };
            match tokio::time::timeout(DRAIN_TIMEOUT, both).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!("still draining after {DRAIN_TIMEOUT:?}; not waiting");
                    Ok(())
                }
            }
        }
        Ended::Dns(result) => {
            let source = result
                .err()
                .unwrap_or_else(|| NetError::from("the DNS listeners stopped"));
            // The DNS failure is the one to report; the admin server's own end is moot.
            let _ = admin.drain(DRAIN_TIMEOUT).await;
            Err(Error::Dns {
                addr: dns_addr,
                source,
            })
        }
        Ended::Admin(source) => {
            // Dropping `server` at the end of this function aborts its tasks if the graceful
            // stop takes too long.
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, server.shutdown_gracefully()).await;
            Err(Error::Admin {
                addr: admin_addr,
                source,
            })
        }
    }
}

/// Checks the configured records and keys them by fully qualified name.
/// The counted name, fully qualified as the zone keys it; a name outside the zone is refused.
fn counted_name(counted: Option<&str>) -> Result<Option<String>, Error> {
    let Some(input) = counted else {
        return Ok(None);
    };
    let name = zone::fqdn(input)
        .map_err(|reason| Error::InvalidConfig(format!("counted {input:?}: {reason}")))?;
    Ok(Some(name.to_string()))
}

fn initial_records(
    records: &BTreeMap<String, Vec<Ipv4Addr>>,
) -> Result<BTreeMap<Name, Vec<Ipv4Addr>>, Error> {
    if records.len() > zone::MAX_NAMES {
        return Err(Error::InvalidConfig(format!(
            "{} record names is too many (at most {})",
            records.len(),
            zone::MAX_NAMES
        )));
    }
    let mut out: BTreeMap<Name, (String, Vec<Ipv4Addr>)> = BTreeMap::new();
    for (input, addrs) in records {
        let name = zone::fqdn(input)
            .map_err(|reason| Error::InvalidConfig(format!("record {input:?}: {reason}")))?;
        if addrs.is_empty() {
            return Err(Error::InvalidConfig(format!(
                "record {input:?} has no address; give at least one"
            )));
        }
        let ips: Vec<_> = addrs.iter().copied().map(Into::into).collect();
        let addrs = zone::ipv4_set(&ips)
            .map_err(|reason| Error::InvalidConfig(format!("record {input:?}: {reason}")))?;
        if let Some((other, _)) = out.get(&name) {
            return Err(Error::InvalidConfig(format!(
                "records {other:?} and {input:?} both name {name}; give each name once"
            )));
        }
        out.insert(name, (input.clone(), addrs));
    }
    Ok(out
        .into_iter()
        .map(|(name, (_, addrs))| (name, addrs))
        .collect())
}

/// The configured TTL in whole seconds, rounded up (so `500ms` is 1 s, not "never cache") and
/// capped at the largest TTL DNS allows.
fn ttl_secs(ttl: HumanDuration) -> u32 {
    let secs = ttl.as_millis().div_ceil(1000);
    u32::try_from(secs).map_or(MAX_TTL_SECS, |s| s.min(MAX_TTL_SECS))
}

#[cfg(test)]
mod tests;

/// Starting a DNS server in-process for another crate's integration tests. Behind the `testing`
/// feature: enable it only from `[dev-dependencies]`.
#[cfg(feature = "testing")]
pub mod testing {
    use std::net::SocketAddr;

    use tokio::net::{TcpListener, UdpSocket};
    use tokio_util::sync::CancellationToken;

    use crate::{Config, Listeners};

    /// Where a test's DNS server listens.
    #[derive(Debug, Clone, Copy)]
    pub struct Served {
        /// DNS, over UDP and TCP.
        pub dns: SocketAddr,
        /// The admin API.
        pub admin: SocketAddr,
    }

    /// Serves `config` on fresh 127.0.0.1 ports until `shutdown`, telling nothing.
    ///
    /// # Panics
    /// If a port cannot be bound: a test cannot go on without its DNS server.
    pub async fn serve(config: Config, shutdown: &CancellationToken) -> Served {
        // A free UDP port may be taken for TCP: try again with another.
        let mut pair = None;
        for _ in 0..20 {
            let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind udp");
            let dns = udp.local_addr().expect("udp address");
            if let Ok(tcp) = TcpListener::bind(dns).await {
                pair = Some((udp, tcp));
                break;
            }
        }
        let (udp, tcp) = pair.expect("a port free for both UDP and TCP in 20 tries");
        let dns = udp.local_addr().expect("udp address");
        let listeners = Listeners {
            tcp,
            udp,
            admin: TcpListener::bind("127.0.0.1:0").await.expect("bind admin"),
            also: None,
        };
        let admin = listeners.admin.local_addr().expect("admin address");
        let sink = crate::EventSink::discard();
        tokio::spawn(crate::run(config, listeners, shutdown.clone(), sink));
        Served { dns, admin }
    }
}
