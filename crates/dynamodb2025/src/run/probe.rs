//! The harness's own view of the endpoint: every 200 ms it asks each lab DNS server for the
//! endpoint's A records in a real DNS query, and journals each server's answer when it changes
//! (`endpoint_probed`). That is the evidence that every server answered empty, and when.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use outage_lab_dns::client::query_a;
use outage_lab_dynamodb_events::Event;
use outage_lab_engine::supervisor::Supervisor;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::Fleet;
use super::fleet::DnsServer;
use crate::names::ProcessName;

/// How often each DNS server is asked.
const EVERY: Duration = Duration::from_millis(200);

/// A query without an answer within this long is journaled as one.
const QUERY_TIMEOUT: Duration = Duration::from_millis(500);

/// Starts probing until `stop`.
pub(super) fn start(fleet: &Fleet, endpoint: &str, stop: CancellationToken) -> JoinHandle<()> {
    let sup = Arc::clone(&fleet.sup);
    let servers = fleet.dns.clone();
    let endpoint = endpoint.to_owned();
    tokio::spawn(async move { probe(sup, servers, endpoint, stop).await })
}

async fn probe(
    sup: Arc<Supervisor<ProcessName>>,
    servers: Vec<DnsServer>,
    endpoint: String,
    stop: CancellationToken,
) {
    let mut last: Vec<Option<(Vec<Ipv4Addr>, Option<String>)>> = vec![None; servers.len()];
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        for (server, last) in servers.iter().zip(last.iter_mut()) {
            let answer = match query_a(server.dns, &endpoint, QUERY_TIMEOUT).await {
                Ok(mut addrs) => {
                    addrs.sort();
                    (addrs, None)
                }
                Err(e) => (Vec::new(), Some(e.to_string())),
            };
            if last.as_ref() == Some(&answer) {
                continue;
            }
            *last = Some(answer.clone());
            sup.emit(Event::EndpointProbed {
                server: server.name.clone(),
                endpoint: endpoint.clone(),
                addrs: answer.0,
                error: answer.1,
            });
        }
    }
}
