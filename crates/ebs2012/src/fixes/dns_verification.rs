//! `dns_verification: { interval }`: DNS changes that propagate reliably. After the first DNS
//! change of the run, every `interval` the harness asks every DNS server for the collector's
//! record with a real DNS query (UDP, no cache) and, where a server still answers anything but
//! the record that was pushed, pushes it to that server again. Each finding and each repair is
//! journaled.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use outage_lab_proto::HumanDuration;
use outage_lab_ebs_events::COLLECTOR_NAME;
use serde::Deserialize;
use tokio::time::Instant;

use super::action::Action;
use super::{Fix, RunContext};
use crate::kinds::FixName;
use crate::fleet_handle::FleetHandle;
use outage_lab_engine::located::{Locator, ScenarioError};

/// How long one verification query may take.
const QUERY_TIMEOUT: Duration = Duration::from_millis(300);

/// `dns_verification: { interval }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsVerification {
    /// How often every DNS server is asked, once the record has changed.
    pub interval: HumanDuration,
}

impl Default for DnsVerification {
    fn default() -> Self {
        Self {
            interval: HumanDuration::millis(500),
        }
    }
}

impl Fix for DnsVerification {
    fn validate(&self, loc: &Locator<'_>) -> Result<(), ScenarioError> {
        super::check_positive(loc, &["fixes", "dns_verification", "interval"], self.interval)
    }

    fn setting(&self, _run: RunContext<'_>) -> String {
        format!("every {}", self.interval)
    }

    const ACTIONS: &'static str = "stale answers found and the record pushed again";
}

/// The verifier of one run.
#[derive(Debug)]
pub struct Verifier {
    interval: Duration,
    /// When to ask next; `None` until the record first changes.
    next: Option<Instant>,
}

impl Verifier {
    /// A verifier that starts with the first DNS change.
    pub fn new(fix: &DnsVerification) -> Self {
        Self {
            interval: fix.interval.get(),
            next: None,
        }
    }

    /// The record was changed (a step pushed it): verify from now on.
    pub fn record_changed(&mut self, now: Instant) {
        self.next.get_or_insert(now);
    }

    /// When the next round is due.
    pub fn due(&self) -> Option<Instant> {
        self.next
    }

    /// The run was frozen for `by` (a workshop stop): the next round comes that much later.
    pub fn shift(&mut self, by: Duration) {
        if let Some(next) = &mut self.next {
            *next += by;
        }
    }

    /// Asks every DNS server; re-pushes the record to each that answers something else.
    pub async fn verify(&mut self, fleet: &mut impl FleetHandle<'_>) -> Vec<Action> {
        self.next = Some(Instant::now() + self.interval);
        let want = fleet.plan().collector_new;
        let mut actions = Vec::new();
        for dns in &fleet.plan().dns {
            let Some(addr) = fleet.dns_addr(&dns.name) else {
                continue;
            };
            let answer = describe(addr, want).await;
            let Some(answer) = answer else {
                continue;
            };
            let repair = match fleet
                .point_collector_record(&dns.name, FixName::DnsVerification.name())
                .await
            {
                Ok(()) => "record pushed again".to_owned(),
                Err(e) => format!("pushing it again failed ({e}); will try at the next round"),
            };
            actions.push(Action {
                fix: FixName::DnsVerification,
                server: None,
                process: Some(dns.name.clone()),
                detail: format!(
                    "{} answers {answer} for {COLLECTOR_NAME}, expected {want}: {repair}",
                    dns.name
                ),
            });
        }
        actions
    }
}

/// What `server` answers, when it is not just `want` (`None` when it is).
async fn describe(server: SocketAddr, want: Ipv4Addr) -> Option<String> {
    match outage_lab_dns::client::query_a(server, COLLECTOR_NAME, QUERY_TIMEOUT).await {
        Ok(addrs) if addrs == [want] => None,
        Ok(addrs) if addrs.is_empty() => Some("no address".into()),
        Ok(addrs) => Some(
            (addrs.iter().map(Ipv4Addr::to_string))
                .collect::<Vec<_>>()
                .join(", "),
        ),
        Err(e) => Some(format!("nothing ({e})")),
    }
}
