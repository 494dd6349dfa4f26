//! Fix `enactor_checks_at_write`. As it was, an enactor checks once, when it picks a plan up,
//! that the plan is newer than the one last applied; it then writes each endpoint's records and
//! notes afterwards, unconditionally, that the endpoint uses its plan. A plan picked up long
//! ago is written over a newer one. With the fix, the enactor first claims the endpoint in the
//! plan store with a compare-and-set on the generation, right before it writes, and leaves the
//! endpoint alone if it already has a newer plan.

use outage_lab_dynamodb_events::{Generation, Refusal};

use crate::client::{PlanStore, StoreError, Swap};

/// Before writing `endpoint`'s records: with the fix, the claim (`Some` refusal if the endpoint
/// has a newer plan); without it, nothing.
pub(crate) async fn claim(
    store: &PlanStore,
    endpoint: &str,
    generation: Generation,
    on: bool,
) -> Result<Option<Refusal>, StoreError> {
    if !on {
        return Ok(None);
    }
    Ok(match store.swap_endpoint(endpoint, generation).await? {
        Swap::Done => None,
        Swap::Kept(current) => Some(Refusal::NewerApplied { current }),
    })
}

/// After writing them: without the fix, the unconditional note; with it, nothing (the claim
/// made it).
pub(crate) async fn record(
    store: &PlanStore,
    endpoint: &str,
    generation: Generation,
    on: bool,
) -> Result<(), StoreError> {
    if on {
        return Ok(());
    }
    store.set_endpoint(endpoint, generation).await
}
