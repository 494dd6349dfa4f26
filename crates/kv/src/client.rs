//! A client of the service, as real ones behave: it resolves the endpoint through a lab DNS
//! server with a caching resolver (positive and negative TTLs honoured), keeps its connections
//! in a pool (a request on a pooled connection needs no lookup; a new connection does), drops
//! its pool once it is `connection_max_age` old, and tells each second's successes and
//! failures as a `client_stats` event.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use outage_lab_dynamodb_events::{ClientKind, Event, EventSink};
use outage_lab_proto::HumanDuration;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::serve_stale::LastGood;

/// Behaviour of one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Its name, in its events.
    pub name: String,
    /// What kind of client it is.
    pub kind: ClientKind,
    /// The endpoint it resolves, fully qualified.
    pub endpoint: String,
    /// The service's port.
    pub port: u16,
    /// The lab DNS server it resolves through.
    pub dns_server: SocketAddr,
    /// Requests per second.
    pub rate: u32,
    /// Bound on one request, and on one lookup.
    pub timeout: HumanDuration,
    /// Its pool is dropped once this old: after that, every request needs a new connection and
    /// so a lookup.
    pub connection_max_age: HumanDuration,
    /// Fix `serve_stale`: a failed or empty lookup gets the last good answer.
    #[serde(default)]
    pub serve_stale: bool,
}

/// Why a client could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The resolver could not be built.
    #[error("no resolver for DNS server {dns_server}: {source}")]
    Resolver {
        /// The DNS server.
        dns_server: SocketAddr,
        /// What hickory said.
        #[source]
        source: hickory_resolver::net::NetError,
    },
    /// The HTTP client could not be built.
    #[error("no HTTP client: {0}")]
    Http(#[source] reqwest::Error),
}

/// One second's counts, swapped out each second.
#[derive(Debug, Default)]
struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
    lookups: AtomicU64,
    lookups_failed: AtomicU64,
    served_stale: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn take(counter: &AtomicU64) -> u64 {
    counter.swap(0, Ordering::Relaxed)
}

/// The client's resolver, as reqwest asks it for each new connection. It outlives every pool:
/// its cache (and the last good answers) are the client's, not a connection's.
#[derive(Debug)]
struct Lookups {
    resolver: TokioResolver,
    last_good: Option<LastGood>,
    counts: Arc<Counts>,
}

impl Lookups {
    async fn lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
        bump(&self.counts.lookups);
        let fqdn = if name.ends_with('.') {
            name.to_owned()
        } else {
            format!("{name}.")
        };
        let found = (self.resolver.lookup_ip(fqdn.as_str()).await.ok())
            .map(|lookup| lookup.iter().collect::<Vec<_>>())
            .filter(|addrs| !addrs.is_empty());
        if found.is_none() {
            bump(&self.counts.lookups_failed);
        }
        let Some(last_good) = &self.last_good else {
            return found;
        };
        let (addrs, stale) = last_good.answer(name, found)?;
        if stale {
            bump(&self.counts.served_stale);
        }
        Some(addrs)
    }
}

/// [`Lookups`] shared with every pool the client builds.
#[derive(Debug, Clone)]
struct Resolve(Arc<Lookups>);

impl reqwest::dns::Resolve for Resolve {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let lookups = Arc::clone(&self.0);
        let name = name.as_str().to_owned();
        Box::pin(async move {
            match lookups.lookup(&name).await {
                Some(addrs) => {
                    let addrs: reqwest::dns::Addrs =
                        Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
                    Ok(addrs)
                }
                None => Err(format!("{name} has no address").into()),
            }
        })
    }
}

/// The endpoint as a client reaches it: the name, the port, and the caching resolver (with its
/// counts) that every pool the client builds asks for each new connection.
#[derive(Debug, Clone)]
pub struct Endpoint {
    name: String,
    port: u16,
    timeout: Duration,
    resolve: Resolve,
    counts: Arc<Counts>,
}

impl Endpoint {
    /// `name:port`, resolved through `dns_server`; requests and lookups bounded by `timeout`;
    /// with `serve_stale`, a failed lookup gets the last good answer.
    pub fn new(
        dns_server: SocketAddr,
        name: &str,
        port: u16,
        timeout: Duration,
        serve_stale: bool,
    ) -> Result<Endpoint, Error> {
        let resolver = outage_lab_dns::client::lab_resolver(dns_server, timeout, 16)
            .map_err(|source| Error::Resolver { dns_server, source })?;
        let counts = Arc::new(Counts::default());
        let lookups = Lookups {
            resolver,
            last_good: serve_stale.then(LastGood::default),
            counts: Arc::clone(&counts),
        };
        Ok(Endpoint {
            name: name.trim_end_matches('.').to_owned(),
            port,
            timeout,
            resolve: Resolve(Arc::new(lookups)),
            counts,
        })
    }

    /// The URL of `key` on the service.
    pub fn url(&self, key: &str) -> String {
        format!("http://{}:{}/kv/{key}", self.name, self.port)
    }

    /// A new pool: its first request opens a new connection, and so looks the endpoint up.
    pub fn pool(&self) -> Result<reqwest::Client, Error> {
        reqwest::Client::builder()
            // Environment proxies must not capture loopback traffic of a lab run.
            .no_proxy()
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .retry(reqwest::retry::never())
            .dns_resolver(Arc::new(self.resolve.clone()))
            .build()
            .map_err(Error::Http)
    }
}

/// A running client's parts.
#[derive(Debug)]
pub struct Client {
    config: Config,
    endpoint: Endpoint,
}

impl Client {
    /// A client for `config`; nothing is sent until [`Client::run`].
    pub fn new(config: Config) -> Result<Client, Error> {
        let endpoint = Endpoint::new(
            config.dns_server,
            &config.endpoint,
            config.port,
            config.timeout.into(),
            config.serve_stale,
        )?;
        Ok(Client { config, endpoint })
    }

    /// Sends `rate` requests a second until `shutdown`, each on its own task, and tells each
    /// second's counts.
    pub async fn run(self, shutdown: CancellationToken, events: EventSink) -> Result<(), Error> {
        let url = self.endpoint.url("lab");
        let period = Duration::from_secs(1) / self.config.rate.max(1);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut second = tokio::time::interval(Duration::from_secs(1));
        second.tick().await;
        let max_age = Duration::from(self.config.connection_max_age);
        let (mut pool, mut built) = (self.endpoint.pool()?, Instant::now());
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                _ = second.tick() => events.emit(self.stats()),
                _ = tick.tick() => {
                    if built.elapsed() >= max_age {
                        (pool, built) = (self.endpoint.pool()?, Instant::now());
                    }
                    let (request, counts) = (pool.get(&url), Arc::clone(&self.endpoint.counts));
                    tokio::spawn(async move {
                        let answered = request.send().await;
                        // A key nobody wrote is a 404: the service answered, which is what
                        // the client measures.
                        let ok = answered.is_ok_and(|r| r.status().is_success() || r.status() == 404);
                        bump(if ok { &counts.ok } else { &counts.failed });
                    });
                }
            }
        }
    }

    fn stats(&self) -> Event {
        Event::ClientStats {
            client: self.config.name.clone(),
            client_kind: self.config.kind,
            ok: take(&self.endpoint.counts.ok),
            failed: take(&self.endpoint.counts.failed),
            lookups: take(&self.endpoint.counts.lookups),
            lookups_failed: take(&self.endpoint.counts.lookups_failed),
            served_stale: take(&self.endpoint.counts.served_stale),
        }
    }
}
