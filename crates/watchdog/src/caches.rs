//! Storage cache sizes, for an aggregate alarm that counts memory net of the cache (the
//! `net_of_cache` setting). Each storage target names where its process tells its cache size;
//! a task asks every one of them once per sample interval, like a scraper, and the sweep reads
//! the latest answers. A storage process that does not answer keeps its last answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::admin::AdminState;

/// How long one cache question may take.
const ASK_TIMEOUT: Duration = Duration::from_millis(200);

/// The latest cache size of each server's storage process.
pub(crate) type Caches = Arc<Mutex<HashMap<String, u64>>>;

/// The part of a storage `/health` answer that matters here.
#[derive(Debug, Deserialize)]
struct CacheAnswer {
    cache_bytes: u64,
}

/// Asks every storage target with a `cache_url` for its cache size every `every`, until
/// `shutdown`; the answers land in the returned map.
pub(crate) fn watch(
    state: Arc<AdminState>,
    every: Duration,
    shutdown: CancellationToken,
) -> Caches {
    let caches: Caches = Arc::default();
    let out = Arc::clone(&caches);
    tokio::spawn(async move {
        let http = match reqwest::Client::builder()
            .no_proxy()
            .timeout(ASK_TIMEOUT)
            .build()
        {
            Ok(http) => http,
            Err(e) => {
                tracing::warn!("no HTTP client for the storage caches: {e}");
                return;
            }
        };
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let (_, targets) = state.targets();
            for t in targets {
                let Some(url) = &t.cache_url else { continue };
                let answer = async { http.get(url).send().await?.json::<CacheAnswer>().await };
                match answer.await {
                    Ok(a) => {
                        let mut map = caches.lock().unwrap_or_else(PoisonError::into_inner);
                        map.insert(t.server.clone(), a.cache_bytes);
                    }
                    Err(e) => tracing::debug!(%url, "no cache size: {e}"),
                }
            }
        }
    });
    out
}

/// A copy of the latest answers.
pub(crate) fn latest(caches: &Caches) -> HashMap<String, u64> {
    caches
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}
