//! The admin HTTP API of a DNS server: how the harness (or a person with curl) reads and changes
//! the zone while it serves.
//!
//! | route | answer |
//! |---|---|
//! | `GET /health` | `200 ok` |
//! | `GET /records` | JSON [`RecordsMsg`]: every A record set by fully qualified name, and the serial |
//! | `PUT /records/{name}` | body JSON [`SetRecordMsg`]; replaces the name's whole A set (empty: NODATA), bumps the serial, answers the new [`RecordsMsg`] |
//! | `DELETE /records/{name}` | takes the name out of the zone (NXDOMAIN), bumps the serial, answers the new [`RecordsMsg`]; `404` if it was not there |
//! | `GET /faults` | JSON [`FaultsMsg`]: every fault on, by fully qualified name |
//! | `PUT /faults/{name}` | body JSON [`DnsFault`]; the name answers SERVFAIL, or late, until `DELETE`; answers the new [`FaultsMsg`] |
//! | `DELETE /faults/{name}` | the name answers as its records say again; answers the new [`FaultsMsg`]; `404` if it had no fault |
//!
//! Errors are `4xx` with a one-line plain-text reason: `400` for a name outside the zone, an IPv6
//! address or a delay over a minute, `400`/`415`/`422` for a body that is not the expected JSON (axum's
//! `Json` rejections), `413` for a body over [`MAX_BODY_BYTES`], `404` for an unknown path, `405`
//! for a known path with the wrong method, `401` for a missing or wrong bearer token and `403` for
//! a non-loopback client when no token is configured.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::EventSink;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use outage_lab_proto::EngineEvent as Event;
use outage_lab_proto::access;
use outage_lab_proto::wire::{DnsFault, FaultsMsg};
use outage_lab_proto::wire::{RecordsMsg, SetRecordMsg};
use tokio::sync::Mutex;

use crate::faults;
use crate::zone::{self, MAX_NAMES, Zone};

/// Largest request body accepted. A record update is well under 1 KiB; 64 KiB is generous and
/// still stops a client from making the server buffer arbitrary amounts of memory.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the request handlers share.
pub(crate) struct Admin {
    /// The zone the DNS server answers from.
    pub(crate) zone: Arc<Zone>,
    /// Where `DnsRecordChanged` events go.
    pub(crate) events: EventSink,
    /// The bearer token every request must carry, if one is configured.
    pub(crate) token: Option<String>,
    /// Serialises updates, so that concurrent `PUT`s emit their events in serial order (the zone
    /// itself is already consistent without it: each change is one write under the zone's lock).
    pub(crate) updates: Mutex<()>,
}

/// The admin router; serve it with `into_make_service_with_connect_info::<SocketAddr>()` so the
/// access check can see the peer's address.
pub(crate) fn router(admin: Arc<Admin>) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/records", get(get_records))
        .route("/records/{name}", put(put_record).delete(delete_record))
        .route("/faults", get(get_faults))
        .route("/faults/{name}", put(put_fault).delete(delete_fault))
        .fallback(|| async { reject(StatusCode::NOT_FOUND, "no such path") })
        .method_not_allowed_fallback(|| async {
            reject(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this path",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Outermost: the access check runs before routing, so an unauthorised client learns
        // nothing about which paths exist.
        .layer(middleware::from_fn_with_state(
            Arc::clone(&admin),
            authorize,
        ))
        .with_state(admin)
}

/// A 4xx answer with a one-line plain-text reason.
fn reject(status: StatusCode, reason: impl Into<String>) -> Response {
    (status, reason.into()).into_response()
}

/// The access check, as middleware around every route.
async fn authorize(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    match check_access(admin.token.as_deref(), peer.ip(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(denied) => denied.into_response(),
    }
}

/// Why a request may not use the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Denied {
    /// No token is configured and the peer is not on loopback: `403`.
    NotLoopback(IpAddr),
    /// A token is configured and the request does not carry it: `401`.
    NoToken,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::NotLoopback(peer) => reject(
                StatusCode::FORBIDDEN,
                format!(
                    "{peer} is not a loopback client; configure admin_token to allow remote clients"
                ),
            ),
            Denied::NoToken => {
                let mut response =
                    reject(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                response
            }
        }
    }
}

/// The shared admin rule (`outage_lab_proto::access`), with this API's refusal messages.
fn check_access(token: Option<&str>, peer: IpAddr, headers: &HeaderMap) -> Result<(), Denied> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    access::check(token, peer, authorization).map_err(|denied| match denied {
        access::Denied::NotLoopback => Denied::NotLoopback(peer),
        access::Denied::BadToken => Denied::NoToken,
    })
}

/// `GET /records`: the zone as the DNS server answers it right now.
async fn get_records(State(admin): State<Arc<Admin>>) -> Json<RecordsMsg> {
    Json(admin.zone.snapshot().await)
}

/// `PUT /records/{name}`: replace the name's whole A set. A malformed body never reaches this
/// function: the `Json` extractor answers it with 400, 415, 422 or 413.
async fn put_record(
    State(admin): State<Arc<Admin>>,
    Path(name): Path<String>,
    Json(body): Json<SetRecordMsg>,
) -> Response {
    let fqdn = match name_in_zone(&name) {
        Ok(fqdn) => fqdn,
        Err(reason) => return reject(StatusCode::BAD_REQUEST, reason),
    };
    let addrs = match zone::ipv4_set(&body.addrs) {
        Ok(addrs) => addrs,
        Err(reason) => return reject(StatusCode::BAD_REQUEST, reason),
    };

    let _update = admin.updates.lock().await;
    if !admin.zone.has(&fqdn).await && admin.zone.name_count().await >= MAX_NAMES {
        return reject(
            StatusCode::BAD_REQUEST,
            format!("the zone already holds {MAX_NAMES} names; no more can be added"),
        );
    }
    let records = admin.zone.replace(&fqdn, &addrs).await;
    let name = fqdn.to_string();
    let addrs: Vec<_> = addrs.into_iter().map(Into::into).collect();
    tracing::info!(
        "record changed: {name} A {addrs:?}, serial {}",
        records.serial
    );
    admin.events.emit(Event::DnsRecordChanged {
        name,
        addrs,
        serial: records.serial,
    });
    Json(records).into_response()
}

/// The zone's name for `name` as given, or why it is none (a `400`).
fn name_in_zone(name: &str) -> Result<hickory_proto::rr::Name, String> {
    zone::fqdn(name).map_err(|reason| format!("name {name:?}: {reason}"))
}

/// `DELETE /records/{name}`: take the name out of the zone, so that it is NXDOMAIN.
async fn delete_record(State(admin): State<Arc<Admin>>, Path(name): Path<String>) -> Response {
    let fqdn = match name_in_zone(&name) {
        Ok(fqdn) => fqdn,
        Err(reason) => return reject(StatusCode::BAD_REQUEST, reason),
    };
    let _update = admin.updates.lock().await;
    let Some(records) = admin.zone.remove(&fqdn).await else {
        return reject(StatusCode::NOT_FOUND, format!("{fqdn} is not in the zone"));
    };
    tracing::info!("record removed: {fqdn}, serial {}", records.serial);
    admin.events.emit(Event::DnsRecordRemoved {
        name: fqdn.to_string(),
        serial: records.serial,
    });
    Json(records).into_response()
}

/// `GET /faults`: every fault on.
async fn get_faults(State(admin): State<Arc<Admin>>) -> Json<FaultsMsg> {
    Json(admin.zone.faults.snapshot())
}

/// `PUT /faults/{name}`: the name answers as `fault` says until the fault is deleted.
async fn put_fault(
    State(admin): State<Arc<Admin>>,
    Path(name): Path<String>,
    Json(fault): Json<DnsFault>,
) -> Response {
    let fqdn = match name_in_zone(&name) {
        Ok(fqdn) => fqdn,
        Err(reason) => return reject(StatusCode::BAD_REQUEST, reason),
    };
    if let Err(reason) = faults::check(&fault) {
        return reject(StatusCode::BAD_REQUEST, reason);
    }
    let _update = admin.updates.lock().await;
    if admin.zone.faults.len() >= MAX_NAMES {
        return reject(
            StatusCode::BAD_REQUEST,
            format!("{MAX_NAMES} names already have a fault; no more can"),
        );
    }
    let faults = admin.zone.faults.set(&fqdn, fault);
    tracing::info!("fault on: {fqdn} {fault:?}");
    admin.events.emit(Event::DnsFaultChanged {
        name: fqdn.to_string(),
        fault: Some(fault),
    });
    Json(faults).into_response()
}

/// `DELETE /faults/{name}`: the name answers as its records say again.
async fn delete_fault(State(admin): State<Arc<Admin>>, Path(name): Path<String>) -> Response {
    let fqdn = match name_in_zone(&name) {
        Ok(fqdn) => fqdn,
        Err(reason) => return reject(StatusCode::BAD_REQUEST, reason),
    };
    let _update = admin.updates.lock().await;
    let Some(faults) = admin.zone.faults.clear(&fqdn) else {
        return reject(StatusCode::NOT_FOUND, format!("{fqdn} has no fault"));
    };
    tracing::info!("fault off: {fqdn}");
    admin.events.emit(Event::DnsFaultChanged {
        name: fqdn.to_string(),
        fault: None,
    });
    Json(faults).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(header::AUTHORIZATION, v);
        }
        headers
    }

    fn status(result: Result<(), Denied>) -> StatusCode {
        result.map_or_else(
            |denied| denied.into_response().status(),
            |()| StatusCode::OK,
        )
    }

    #[test]
    fn without_a_token_only_loopback_peers_get_in() {
        let none = HeaderMap::new();
        for peer in ["127.0.0.1", "127.4.5.6", "::1", "::ffff:127.0.0.1"] {
            let ip: IpAddr = peer.parse().expect("ip");
            assert_eq!(
                status(check_access(None, ip, &none)),
                StatusCode::OK,
                "{peer}"
            );
        }
        for peer in ["10.0.0.1", "192.168.1.20", "::ffff:10.0.0.1", "2001:db8::1"] {
            let ip: IpAddr = peer.parse().expect("ip");
            assert_eq!(
                status(check_access(None, ip, &none)),
                StatusCode::FORBIDDEN,
                "{peer}"
            );
        }
    }

    #[test]
    fn with_a_token_every_peer_needs_the_bearer_token() {
        let remote: IpAddr = "10.0.0.1".parse().expect("ip");
        let local: IpAddr = "127.0.0.1".parse().expect("ip");
        let token = Some("s3cret");
        for peer in [remote, local] {
            assert_eq!(
                status(check_access(token, peer, &with_auth("Bearer s3cret"))),
                StatusCode::OK
            );
            assert_eq!(
                status(check_access(token, peer, &with_auth("bearer s3cret"))),
                StatusCode::OK
            );
            for bad in [
                "",
                "Bearer",
                "Bearer s3cre",
                "Bearer s3cret2",
                "Basic s3cret",
                "s3cret",
            ] {
                assert_eq!(
                    status(check_access(token, peer, &with_auth(bad))),
                    StatusCode::UNAUTHORIZED,
                    "{bad:?} from {peer}"
                );
            }
        }
    }
}
