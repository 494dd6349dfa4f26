//! Serving a role's HTTP API until shutdown, where a server that stops unasked is a failure.
//!
//! Every role with an HTTP API (storage, control, the watchdog, the DNS server's admin API) runs
//! it the same way: on its own task, stopping gracefully on the role's shutdown token, while the
//! role's own loop does its work and must notice if the server ends first (axum's server only
//! ends once asked, so an early end is an error). After shutdown the server gets a bounded time
//! to finish the requests in flight. [`HttpServer`] is that shape, written once; [`serve_role`]
//! is the whole life of a role with one HTTP API (serve, tell `ready`, work, drain).
//!
//! It lives in proto because proto is the one crate every role already depends on. It is behind
//! the `server` feature because the rest of proto is plain data (events, journal, report schema)
//! that needs no runtime: whatever reads those types gets them without axum and tokio, and a
//! role's `Cargo.toml` says that it uses this module.

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::io;
use std::time::Duration;

use axum::serve::{Listener, Serve, WithGracefulShutdown};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::{EngineEvent, EventSink};

/// What [`axum::serve`] becomes once it stops on a cancelled token.
type Graceful<L, M, S> = WithGracefulShutdown<L, M, S, WaitForCancellationFutureOwned>;

/// An HTTP server running on its own task until its shutdown token is cancelled.
///
/// Dropping it aborts the task, so the server never outlives the role that started it, even when
/// the role returns early with an error.
#[derive(Debug)]
pub struct HttpServer {
    /// `None` once the task's end has been seen: a finished task must not be awaited again.
    task: Option<JoinHandle<io::Result<()>>>,
}

impl HttpServer {
    /// Spawns `serve` (what [`axum::serve`] returns, for a router or for a make-service such as
    /// `into_make_service_with_connect_info`) with a graceful stop on `shutdown`.
    ///
    /// The listener is bound already, so connections that arrive before the task first runs
    /// wait in the kernel's queue: the server counts as serving as of this call.
    pub fn spawn<L, M, S>(serve: Serve<L, M, S>, shutdown: &CancellationToken) -> Self
    where
        L: Listener,
        Graceful<L, M, S>: IntoFuture<Output = io::Result<()>>,
        <Graceful<L, M, S> as IntoFuture>::IntoFuture: Send + 'static,
    {
        let serve = serve
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future();
        Self {
            task: Some(tokio::spawn(serve)),
        }
    }

    /// Resolves only when the server ends without having been asked to, with why.
    ///
    /// Meant as an arm of a `biased` `tokio::select!` whose first arm is the shutdown token: the
    /// server stops gracefully at the moment shutdown is asked for, and that stop must not be
    /// taken for a failure. Cancel-safe; once it has resolved, it never resolves again.
    pub async fn stopped_unasked(&mut self) -> io::Error {
        let Some(task) = self.task.as_mut() else {
            return std::future::pending().await;
        };
        let joined = task.await;
        self.task = None;
        match joined {
            Ok(Ok(())) => io::Error::other("HTTP server stopped on its own"),
            Ok(Err(e)) => e,
            Err(join) => io::Error::other(join),
        }
    }

    /// Gives the server at most `timeout` to finish the requests in flight (its shutdown token
    /// is cancelled already; idle keep-alive connections close at once), then drops the
    /// connections still open.
    ///
    /// Only the server's own failure is an error: running out of time is logged, not returned,
    /// since the role is stopping anyway.
    pub async fn drain(mut self, timeout: Duration) -> io::Result<()> {
        let Some(task) = self.task.as_mut() else {
            return Ok(());
        };
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(served)) => served,
            Ok(Err(join)) => Err(io::Error::other(join)),
            Err(_) => {
                // Dropping `self` below aborts the task.
                tracing::warn!("HTTP connections still open after {timeout:?}; dropping them");
                Ok(())
            }
        }
    }
}

/// Why a role that serves HTTP stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    /// Its listener's address could not be read.
    #[error("the {role} cannot read its listener's address: {source}")]
    LocalAddr {
        /// The role.
        role: &'static str,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// Its HTTP server stopped without being asked to.
    #[error("the {role}'s HTTP server stopped: {source}")]
    Server {
        /// The role.
        role: &'static str,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The one socket of a role with one HTTP API, bound by its caller (the role command, or a
/// test).
#[derive(Debug)]
pub struct Listeners {
    /// Its HTTP listener.
    pub http: tokio::net::TcpListener,
}

/// How long a role's in-flight requests get after shutdown.
pub const DRAIN: Duration = Duration::from_secs(1);

/// The life of a role with one HTTP API, written once: serves `router` on `listeners`, tells one
/// `ready` event with its real address as `http`, runs `work` until `shutdown` (or until `work`
/// ends), then drains. A server that stops unasked ends the role with [`RoleError::Server`].
pub async fn serve_role(
    role: &'static str,
    router: axum::Router,
    listeners: Listeners,
    shutdown: CancellationToken,
    events: &EventSink<EngineEvent>,
    work: impl Future<Output = ()>,
) -> Result<(), RoleError> {
    let http = listeners.http;
    let addr = (http.local_addr()).map_err(|source| RoleError::LocalAddr { role, source })?;
    let mut server = HttpServer::spawn(axum::serve(http, router), &shutdown);
    tracing::info!("{role} serving on http://{addr}");
    events.emit(EngineEvent::Ready {
        role: role.to_owned(),
        addrs: BTreeMap::from([("http".to_owned(), addr)]),
    });
    tokio::select! {
        biased;
        () = shutdown.cancelled() => {}
        source = server.stopped_unasked() => return Err(RoleError::Server { role, source }),
        () = work => {}
    }
    let _ = server.drain(DRAIN).await;
    Ok(())
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;
    use std::net::SocketAddr;
    use tokio::net::TcpListener;

    async fn listener() -> TcpListener {
        TcpListener::bind("127.0.0.1:0").await.expect("bind")
    }

    #[tokio::test]
    async fn a_graceful_stop_is_not_a_failure_and_drains() {
        let shutdown = CancellationToken::new();
        let app = Router::new().route("/", get(|| async { "ok" }));
        let mut server = HttpServer::spawn(axum::serve(listener().await, app), &shutdown);
        shutdown.cancel();
        // The shutdown arm comes first, as in every role: the graceful stop is never an error.
        let failed = tokio::select! {
            biased;
            () = shutdown.cancelled() => None,
            e = server.stopped_unasked() => Some(e),
        };
        assert!(failed.is_none(), "{failed:?}");
        server.drain(Duration::from_secs(1)).await.expect("drained");
    }

    #[tokio::test]
    async fn a_server_that_ends_unasked_is_reported() {
        let shutdown = CancellationToken::new();
        let app = Router::new().into_make_service_with_connect_info::<SocketAddr>();
        let mut server = HttpServer::spawn(axum::serve(listener().await, app), &shutdown);
        // Abort the task from outside: the server is gone though nobody cancelled the token.
        server.task.as_ref().expect("running").abort();
        let e = server.stopped_unasked().await;
        assert!(e.to_string().contains("cancelled"), "{e}");
        // Draining a server already seen to end returns at once.
        server
            .drain(Duration::from_secs(60))
            .await
            .expect("nothing left");
    }
}
