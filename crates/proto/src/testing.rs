//! Starting a role in this process for its integration tests.
//!
//! The role crates test their `run` the same way: bind a loopback listener, hand `run` a
//! cancellation token and a channel [`EventSink`], wait for the role's first event, which must be
//! the engine's `Ready` with the role's name, and talk HTTP to the address it names. [`start_role`]
//! is that, written once.
//!
//! Behind the `testing` feature, which the role crates enable only in `[dev-dependencies]`: none
//! of this is part of a build a user runs.

use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{EngineEvent, EventSink, Vocabulary};

/// How long a role may take to say it is ready: control places every volume first.
pub const READY_WITHIN: Duration = Duration::from_secs(15);

/// A role running on a task of this process.
#[derive(Debug)]
pub struct RunningRole<E, V> {
    /// The role's name, as its `Ready` event gave it.
    pub role: String,
    /// The address its `Ready` event named under the key [`start_role`] was given.
    pub addr: SocketAddr,
    /// Every event after `Ready`.
    pub events: Receiver<V>,
    /// Cancel it to stop the role.
    pub shutdown: CancellationToken,
    /// The role's `run`.
    pub task: JoinHandle<Result<(), E>>,
    /// A client for the tests' requests.
    pub http: reqwest::Client,
}

/// Starts a role on a listener bound to 127.0.0.1 (port chosen by the system) and waits for its
/// `Ready`.
///
/// `run` gets the listener, the shutdown token and the event sink, and returns the role's `run`
/// future (building the role's own `Listeners` around the listener). Panics, as a test should,
/// unless the first event is `Ready` for `role` naming an address under `addr_key`.
pub async fn start_role<E, V, F>(
    role: &str,
    addr_key: &str,
    run: impl FnOnce(TcpListener, CancellationToken, EventSink<V>) -> F,
) -> RunningRole<E, V>
where
    F: Future<Output = Result<(), E>> + Send + 'static,
    E: Send + 'static,
    V: Vocabulary,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (sink, events) = EventSink::channel();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(listener, shutdown.clone(), sink));
    // The very first event must be Ready.
    let first = next_event(&events, READY_WITHIN, |_| true)
        .await
        .unwrap_or_else(|| panic!("{role} sent no event within {READY_WITHIN:?}"));
    let Some(EngineEvent::Ready {
        role: ready_role,
        addrs,
    }) = first.engine()
    else {
        panic!("first event was not Ready: {first:?}")
    };
    assert_eq!(ready_role, role);
    let addr = *addrs
        .get(addr_key)
        .unwrap_or_else(|| panic!("Ready names no {addr_key:?} address: {addrs:?}"));
    RunningRole {
        role: ready_role,
        addr,
        events,
        shutdown,
        task,
        http: reqwest::Client::new(),
    }
}

impl<E: Debug, V> RunningRole<E, V> {
    /// `http://{addr}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Cancels the role and waits at most `within` for `run` to return; panics if it takes
    /// longer or panicked.
    pub async fn stop(self, within: Duration) -> Result<(), E> {
        self.shutdown.cancel();
        let role = self.role;
        tokio::time::timeout(within, self.task)
            .await
            .unwrap_or_else(|_| panic!("{role} did not stop within {within:?} of shutdown"))
            .unwrap_or_else(|join| panic!("{role} task failed: {join}"))
    }
}

/// Waits up to `within` for the first event matching `pred`, skipping others; `None` if none
/// came. Panics if the role dropped its sink (it returned).
pub async fn next_event<V>(
    events: &Receiver<V>,
    within: Duration,
    pred: impl Fn(&V) -> bool,
) -> Option<V> {
    tokio::time::timeout(within, async {
        loop {
            match events.try_recv() {
                Ok(e) if pred(&e) => return e,
                Ok(_) => {}
                // The sink is a std channel: poll it without blocking the runtime's thread.
                Err(TryRecvError::Empty) => tokio::time::sleep(Duration::from_millis(5)).await,
                Err(e) => panic!("event channel closed: {e}"),
            }
        }
    })
    .await
    .ok()
}
