//! The operator's repair: what AWS engineers did by hand. The endpoint gets the newest plan's
//! records on every DNS server, and the plan store notes that it uses that plan, so the
//! enactors, which refused an endpoint whose plan was gone, take it up again.

use std::net::SocketAddr;

use outage_lab_dynamodb_events::Generation;
use outage_lab_proto::wire::DnsChange;

use crate::client::PlanStore;
use crate::enactor::RoundError;

/// Restores `endpoint` from the newest plan on every DNS server of `dns_admins`; the generation
/// it restored, or `None` if the store holds no plan.
pub async fn manual_repair(
    store: &PlanStore,
    http: &reqwest::Client,
    dns_admins: &[SocketAddr],
    endpoint: &str,
) -> Result<Option<Generation>, RoundError> {
    let Some(plan) = store.newest().await? else {
        return Ok(None);
    };
    let change = DnsChange::Set(plan.addrs(endpoint).into_iter().map(Into::into).collect());
    for &admin in dns_admins {
        outage_lab_dns::client::change(http, admin, endpoint, &change).await?;
    }
    store.set_endpoint(endpoint, plan.generation).await?;
    Ok(Some(plan.generation))
}
