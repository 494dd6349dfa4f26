//! A minimal DNS client: one A query over UDP to one server, no cache, no retries. It is how
//! the harness's DNS verifier (the `dns_verification` fix) asks each DNS server what it answers
//! right now, the way any resolver would, rather than trusting what it pushed to the admin API.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
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
