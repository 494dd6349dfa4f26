//! Memory read where the processes live: a target whose `reader` names a launcher is read by
//! that launcher (`GET {url}/memory`, the kernel's `/proc/PID/statm` on its own machine), not
//! here. Across containers and machines the watchdog shares no PID namespace with the
//! processes it judges; it still judges only numbers read from the kernel, never what a role
//! says about itself.
//!
//! Each sweep asks every launcher once, all at the same time, and waits at most one sample
//! interval: a launcher out of reach delays a sweep by that much, and its processes are
//! judged again once it answers (they are not taken as gone).

use std::collections::BTreeMap;
use std::time::Duration;

use outage_lab_proto::wire::ProcessMemory;
use tokio::task::JoinSet;

use crate::sweep::{Key, Reading, Readings};

/// Asks launchers for their children's memory.
#[derive(Debug, Clone)]
pub(crate) struct Launchers {
    http: reqwest::Client,
    token: Option<String>,
}

impl Launchers {
    /// A client whose every question gives up after `timeout`, sending `token` as a bearer.
    pub(crate) fn new(timeout: Duration, token: Option<String>) -> reqwest::Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .build()?;
        Ok(Self { http, token })
    }

    /// Reads every target in `by_url` (launcher URL to names there and their targets) into
    /// `into`: what a launcher answered lands in `read`, and every target of a launcher that did
    /// not answer in `unknown`.
    pub(crate) async fn read(
        &self,
        by_url: BTreeMap<String, Vec<(String, Key)>>,
        into: &mut Readings,
    ) {
        let mut asks = JoinSet::new();
        for (url, names) in by_url {
            let this = self.clone();
            asks.spawn(async move {
                let answer = this.ask(&url).await;
                if let Err(e) = &answer {
                    tracing::warn!(%url, "launcher did not tell its processes' memory: {e}");
                }
                (names, answer.ok())
            });
        }
        while let Some(joined) = asks.join_next().await {
            let Ok((names, answer)) = joined else {
                continue;
            };
            for (name, key) in names {
                match &answer {
                    Some(memory) => {
                        if let Some(m) = memory.get(&name) {
                            let reading = Reading {
                                rss: m.rss_bytes,
                                start_time: m.start_time,
                            };
                            into.read.insert(key, reading);
                        }
                    }
                    None => {
                        into.unknown.insert(key);
                    }
                }
            }
        }
    }

    async fn ask(&self, url: &str) -> reqwest::Result<BTreeMap<String, ProcessMemory>> {
        let mut request = self.http.get(format!("{url}/memory"));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        request.send().await?.error_for_status()?.json().await
    }
}
