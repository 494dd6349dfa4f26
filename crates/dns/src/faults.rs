//! Faults a DNS server answers with, per name, beside its records (`PUT /faults/{name}` on the
//! admin API): SERVFAIL, or the zone's own answer held back for a while. [`Faulty`] applies
//! them around the zone's catalog, so a fault changes what a real resolver gets and nothing
//! else: the records stay as they are.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, ResponseCode};
use hickory_proto::rr::{LowerName, Name};
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use outage_lab_proto::wire::{DnsFault, FaultsMsg};

/// The longest an answer may be held back: far past any resolver's timeout (a few seconds),
/// and short enough that a server shutting down is not kept waiting on a held answer for long.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// The faults on, by name.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    by_name: RwLock<BTreeMap<LowerName, DnsFault>>,
}

impl Faults {
    /// Turns `fault` on for `name` (replacing the one it had); the faults after the change.
    pub(crate) fn set(&self, name: &Name, fault: DnsFault) -> FaultsMsg {
        let mut map = self.by_name.write().unwrap_or_else(PoisonError::into_inner);
        map.insert(LowerName::new(name), fault);
        snapshot_of(&map)
    }

    /// Turns `name`'s fault off; `None` if it had none.
    pub(crate) fn clear(&self, name: &Name) -> Option<FaultsMsg> {
        let mut map = self.by_name.write().unwrap_or_else(PoisonError::into_inner);
        map.remove(&LowerName::new(name))?;
        Some(snapshot_of(&map))
    }

    /// Every fault on.
    pub(crate) fn snapshot(&self) -> FaultsMsg {
        snapshot_of(&self.by_name.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// How many names have a fault.
    pub(crate) fn len(&self) -> usize {
        self.by_name
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    fn of(&self, name: &LowerName) -> Option<DnsFault> {
        let map = self.by_name.read().unwrap_or_else(PoisonError::into_inner);
        map.get(name).copied()
    }
}

fn snapshot_of(map: &BTreeMap<LowerName, DnsFault>) -> FaultsMsg {
    FaultsMsg {
        faults: (map.iter())
            .map(|(name, fault)| (name.to_string(), *fault))
            .collect(),
    }
}

/// Refuses a fault the server will not hold: a delay over [`MAX_DELAY`].
pub(crate) fn check(fault: &DnsFault) -> Result<(), String> {
    match fault {
        DnsFault::Delay { by } if by.0 > MAX_DELAY => Err(format!(
            "a delay of {by} is longer than the {}s a DNS server holds an answer",
            MAX_DELAY.as_secs()
        )),
        _ => Ok(()),
    }
}

/// A request handler that answers a name with a fault on as the fault says, and lets `inner`
/// answer every other (and a delayed one, once its delay is over).
pub(crate) struct Faulty<H> {
    pub(crate) inner: H,
    pub(crate) faults: Arc<Faults>,
}

#[async_trait::async_trait]
impl<H: RequestHandler> RequestHandler for Faulty<H> {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        let fault =
            (request.request_info().ok()).and_then(|info| self.faults.of(info.query.name()));
        match fault {
            Some(DnsFault::Servfail) => return servfail(request, response_handle).await,
            Some(DnsFault::Delay { by }) => tokio::time::sleep(by.0).await,
            None => {}
        }
        self.inner
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

/// Answers `request` with SERVFAIL.
async fn servfail(request: &Request, mut response_handle: impl ResponseHandler) -> ResponseInfo {
    let response = MessageResponseBuilder::new(&request.queries, None)
        .error_msg(&request.metadata, ResponseCode::ServFail);
    match response_handle.send_response(response).await {
        Ok(info) => info,
        Err(error) => {
            tracing::warn!(%error, "could not send a SERVFAIL");
            // What was meant, for the caller's accounting: nothing reached the client.
            let mut metadata = Metadata::new(
                request.metadata.id,
                MessageType::Response,
                request.metadata.op_code,
            );
            metadata.response_code = ResponseCode::ServFail;
            ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            })
        }
    }
}
