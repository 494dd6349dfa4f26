//! Clients of a lab DNS server. [`query_a`] is a minimal DNS client: one A query over UDP to one
//! server, no cache, no retries. It is how the harness's DNS verifier (the `dns_verification`
//! fix) asks each DNS server what it answers right now, the way any resolver would, rather than
//! trusting what it pushed to the admin API. [`change`] is the admin API's client: how the
//! harness's steps and the DNS automation's enactors change a record.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use outage_lab_proto::wire::DnsChange;
use tokio::net::UdpSocket;

/// Why a query got no answer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The name is not a DNS name.
    #[error("{0:?} is not a DNS name: {1}")]
    Name(String, String),
    /// The socket failed.
    #[error("could not query {server}: {source}")]
    Io {
        /// The DNS server.
        server: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// No response within the timeout.
    #[error("{server} did not answer within {timeout:?}")]
    Timeout {
        /// The DNS server.
        server: SocketAddr,
        /// How long we waited.
        timeout: Duration,
    },
    /// The response was not a DNS message for our query.
    #[error("{server} sent a response that is not an answer to the query: {detail}")]
    Response {
        /// The DNS server.
        server: SocketAddr,
        /// What was wrong.
        detail: String,
    },
}

/// The A records `server` answers for `name` now (empty if it has none).
pub async fn query_a(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> Result<Vec<Ipv4Addr>, QueryError> {
    let fqdn = Name::from_ascii(name).map_err(|e| QueryError::Name(name.into(), e.to_string()))?;
    let mut query = Message::query();
    query.add_query(Query::query(fqdn, RecordType::A));
    let bytes = (query.to_vec()).map_err(|e| QueryError::Name(name.into(), e.to_string()))?;
    let io = |source| QueryError::Io { server, source };
    let bind: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(bind).await.map_err(io)?;
    socket.send_to(&bytes, server).await.map_err(io)?;
    let mut buf = vec![0u8; 4096];
    let received = tokio::time::timeout(timeout, socket.recv_from(&mut buf)).await;
    let (n, _) = received
        .map_err(|_| QueryError::Timeout { server, timeout })?
        .map_err(io)?;
    let bad = |detail: String| QueryError::Response { server, detail };
    let message = Message::from_vec(&buf[..n]).map_err(|e| bad(e.to_string()))?;
    if message.id != query.id {
        return Err(bad(format!("id {} is not ours ({})", message.id, query.id)));
    }
    Ok((message.answers.iter())
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect())
}

/// Why the admin API did not make a change.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request got no answer.
    #[error("{method} {url} failed: {source}")]
    Unreachable {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// What the HTTP client said.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered, but not with success.
    #[error("{method} {url} answered {status}: {body}")]
    Refused {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The status.
        status: reqwest::StatusCode,
        /// What it said.
        body: String,
    },
}

/// Makes `change` to `name` through the admin API of the DNS server at `admin`, as any admin
/// client would: one HTTP request, success or the server's words.
pub async fn change(
    http: &reqwest::Client,
    admin: SocketAddr,
    name: &str,
    change: &DnsChange,
) -> Result<(), AdminError> {
    let (method, path, body) = change.request(name);
    let url = format!("http://{admin}{path}");
    let verb = if method == "DELETE" {
        reqwest::Method::DELETE
    } else {
        reqwest::Method::PUT
    };
    let mut request = http.request(verb, &url);
    if let Some(body) = body {
        request = (request.header(reqwest::header::CONTENT_TYPE, "application/json")).body(body);
    }
    match request.send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(AdminError::Refused {
            method,
            url,
            status: r.status(),
            body: r.text().await.unwrap_or_default(),
        }),
        Err(source) => Err(AdminError::Unreachable {
            method,
            url,
            source,
        }),
    }
}

/// A caching stub resolver that asks one lab DNS server, the way a lab client resolves: UDP only,
/// on the server's real port (lab DNS servers are not on 53), A records only, never
/// `/etc/hosts`, one query per lookup (`attempts` 0: the caller's own cadence is the retry),
/// each lookup bounded by `timeout`. Its cache of `cache_size` names honours every answer's TTL,
/// and an empty or missing name's negative TTL (the zone SOA's), which is how a DNS change, and
/// an emptied name, reach a client.
pub fn lab_resolver(
    dns: SocketAddr,
    timeout: Duration,
    cache_size: u64,
) -> Result<hickory_resolver::TokioResolver, hickory_resolver::net::NetError> {
    use hickory_resolver::config::{
        ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    };
    let mut connection = ConnectionConfig::udp();
    connection.port = dns.port();
    let mut name_server = NameServerConfig::udp(dns.ip());
    name_server.connections = vec![connection];
    let mut builder = hickory_resolver::Resolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![name_server]),
        hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
    );
    let opts = builder.options_mut();
    opts.timeout = timeout;
    opts.attempts = 0;
    opts.num_concurrent_reqs = 1;
    // The zone serves A records only; asking for AAAA too would double the queries.
    opts.ip_strategy = LookupIpStrategy::Ipv4Only;
    opts.use_hosts_file = ResolveHosts::Never;
    opts.cache_size = cache_size;
    opts.try_tcp_on_error = false;
    builder.build()
}
