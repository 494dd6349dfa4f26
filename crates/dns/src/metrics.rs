//! `GET /metrics` on a DNS server's admin listener: queries answered, the answers it gave for
//! its counted name (`Config::counted`; `collector.lab.internal` in the 2012 incident) and the
//! answer it gives for it right now (a gauge of 1 labelled with the address, the usual idiom for
//! "current value is a string"), the zone serial and how many record changes it has taken.
//!
//! `/metrics` is read-only and sits outside the admin API's access check, like `/health` on the
//! other daemons: a Prometheus on another host can scrape it without the admin token.

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use hickory_proto::rr::RecordType;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use outage_lab_proto::metrics;
use outage_lab_proto::metrics::prometheus_client::metrics::counter::Counter;
use outage_lab_proto::metrics::prometheus_client::metrics::family::Family;
use outage_lab_proto::metrics::prometheus_client::metrics::gauge::Gauge;
use outage_lab_proto::metrics::prometheus_client::registry::Registry;

use crate::zone::Zone;

/// The DNS server's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    queries: Counter,
    answers: Family<Vec<(&'static str, String)>, Counter>,
    /// The name whose answers are counted, if any.
    counted: Option<String>,
    /// Answers for the counted name so far, by address answered.
    pub(crate) counted_answers: std::sync::Mutex<std::collections::BTreeMap<IpAddr, u64>>,
    answer: Family<Vec<(&'static str, String)>, Gauge>,
    serial: Gauge,
    changes: Gauge,
    /// The serial at start: changes are counted from it.
    initial_serial: u32,
}

impl Metrics {
    pub(crate) fn new(initial_serial: u32, counted: Option<String>) -> Self {
        let mut registry = Registry::with_prefix(metrics::PREFIX);
        let queries = Counter::default();
        registry.register(
            "dns_queries",
            "DNS requests this server answered (UDP and TCP)",
            queries.clone(),
        );
        let answers = Family::<Vec<(&'static str, String)>, Counter>::default();
        registry.register(
            "dns_counted_answers",
            "Answers this server gave for its counted name's A record, by address answered",
            answers.clone(),
        );
        let answer = Family::<Vec<(&'static str, String)>, Gauge>::default();
        registry.register(
            "dns_counted_answer",
            "1 for every address this server answers for its counted name right now",
            answer.clone(),
        );
        let serial = Gauge::default();
        registry.register("dns_zone_serial", "The zone's SOA serial", serial.clone());
        let changes = Gauge::default();
        registry.register(
            "dns_record_changes",
            "Record set replacements since start (through the admin API)",
            changes.clone(),
        );
        Self {
            registry,
            queries,
            answers,
            counted_answers: std::sync::Mutex::default(),
            counted,
            answer,
            serial,
            changes,
            initial_serial,
        }
    }

    /// The `/metrics` route; the zone is read at scrape time.
    pub(crate) fn router(self: Arc<Self>, zone: Arc<Zone>) -> Router {
        Router::new()
            .route("/metrics", get(serve))
            .with_state((self, zone))
    }
}

async fn serve(State((m, zone)): State<(Arc<Metrics>, Arc<Zone>)>) -> impl IntoResponse {
    let snapshot = zone.snapshot().await;
    m.answer.clear();
    let counted = m
        .counted
        .as_deref()
        .and_then(|name| snapshot.records.get(name));
    for addr in counted.into_iter().flatten() {
        m.answer
            .get_or_create(&vec![("address", addr.to_string())])
            .set(1);
    }
    m.serial.set(i64::from(snapshot.serial));
    m.changes
        .set(i64::from(snapshot.serial.wrapping_sub(m.initial_serial)));
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::encode(&m.registry),
    )
}

/// How often the answers so far are told as an event (when they changed).
const TELL_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Tells [`Event::DnsAnswers`] every [`TELL_EVERY`] while the counts change, until `stop`.
pub(crate) async fn tell_answers(
    metrics: Arc<Metrics>,
    events: crate::EventSink,
    stop: tokio_util::sync::CancellationToken,
) {
    let Some(name) = metrics.counted.clone() else {
        return;
    };
    let mut told = std::collections::BTreeMap::new();
    let mut tick = tokio::time::interval(TELL_EVERY);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = (metrics.counted_answers.lock())
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if now != told {
            events.emit(outage_lab_proto::EngineEvent::DnsAnswers {
                name: name.clone(),
                answers: now.clone(),
            });
            told = now;
        }
    }
}

/// A request handler that counts every request, and the answers for its counted name by
/// address, then lets `inner` answer it.
pub(crate) struct Counting<H> {
    pub(crate) inner: H,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) zone: Arc<Zone>,
}

impl<H> Counting<H> {
    /// Counts the answer `request` gets if it asks for its counted name's A record.
    async fn count_counted_answer(&self, request: &Request) {
        let Ok(info) = request.request_info() else {
            return;
        };
        let Some(counted) = self.metrics.counted.as_deref() else {
            return;
        };
        let asks_counted = info.query.query_type() == RecordType::A
            && (info.query.name().to_string()).eq_ignore_ascii_case(counted);
        if !asks_counted {
            return;
        }
        let snapshot = self.zone.snapshot().await;
        let mut answers = (self.metrics.counted_answers)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for addr in snapshot.records.get(counted).into_iter().flatten() {
            *answers.entry(*addr).or_default() += 1;
            (self.metrics.answers)
                .get_or_create(&vec![("address", addr.to_string())])
                .inc();
        }
    }
}

#[async_trait::async_trait]
impl<H: RequestHandler> RequestHandler for Counting<H> {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        self.metrics.queries.inc();
        self.count_counted_answer(request).await;
        self.inner
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}
