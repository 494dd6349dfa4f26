//! The launcher client: a process of the run started by the `outage-lab host` of another
//! container or machine, its stdout and exit streamed back, its signals sent over HTTP.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use outage_lab_proto::Vocabulary;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use super::teller::Teller;
use crate::error::HarnessError;

/// Where each process of the run is started, and how to talk to the launchers.
#[derive(Debug, Clone)]
pub struct Launchers<K> {
    /// Launcher address by process.
    by_process: BTreeMap<K, SocketAddr>,
    /// The shared admin token, sent as a bearer token on every admin call.
    pub token: String,
    /// A client for launcher streams: no overall timeout (a spawn response lasts as long as
    /// its process), a short connect timeout.
    pub client: reqwest::Client,
}

impl<K: Ord + std::fmt::Display> Launchers<K> {
    /// The launchers of a run: `by_process` says which runs each process.
    pub fn new(
        by_process: BTreeMap<K, SocketAddr>,
        token: String,
        client: reqwest::Client,
    ) -> Self {
        Self {
            by_process,
            token,
            client,
        }
    }

    /// The launcher that runs `process`.
    pub fn host_of(&self, process: &K) -> Result<SocketAddr, HarnessError> {
        self.by_process.get(process).copied().ok_or_else(|| {
            HarnessError::Start(format!("no launcher host is assigned to process {process}"))
        })
    }
}

/// The headers every harness request to a launcher carries: the bearer token.
pub fn auth_headers(token: &str) -> Result<HeaderMap, HarnessError> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| HarnessError::Start("the admin token is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(HeaderMap::from_iter([(AUTHORIZATION, value)]))
}

/// The launcher route that signals one remote process.
#[derive(Clone)]
pub(super) struct RemoteSignal {
    pub(super) client: reqwest::Client,
    pub(super) url: String,
}

impl RemoteSignal {
    /// The route of process `name` on the launcher at `host`.
    pub(super) fn new<K>(remote: &Launchers<K>, host: SocketAddr, name: &str) -> Self {
        Self {
            client: remote.client.clone(),
            url: format!("http://{host}/processes/{name}/signal"),
        }
    }
}

/// How a process ended whose launcher went away before saying: its machine or container is
/// gone, and the process with it.
pub const LOST_WITH_HOST: &str = "lost with its launcher host";

/// What to start on a launcher: name, outage-lab arguments, log, or an external program.
pub(super) type RemoteSpawn<'a> = (
    &'a str,
    &'a [String],
    &'a Path,
    Option<outage_lab_host::ProgramRequest>,
);

/// The request for a launcher: an external program writes its own log where the launcher can
/// (the run directory, mounted there too); a role's config travels in the request, named in `args`
/// relative to the directory the launcher gives it, so the launcher may be on another machine.
fn spawn_request(
    name: &str,
    args: &[String],
    log: &Path,
    program: Option<outage_lab_host::ProgramRequest>,
) -> Result<outage_lab_host::SpawnRequest, HarnessError> {
    let mut request = outage_lab_host::SpawnRequest {
        name: name.to_owned(),
        args: args.to_vec(),
        files: BTreeMap::new(),
        log: program.is_some().then(|| log.to_owned()),
        program,
    };
    let config_at = (request.args.iter())
        .position(|a| a == "--config")
        .map(|i| i + 1);
    if let Some(arg) = config_at.and_then(|i| request.args.get_mut(i)) {
        let path = PathBuf::from(&*arg);
        let file = (path.file_name())
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("{name}.json"));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| HarnessError::io(format!("read {}", path.display()), e))?;
        request.files.insert(file.clone(), text);
        *arg = file;
    }
    Ok(request)
}

/// Asks `name`'s launcher host (at `host`) to start it; the response body is the child's stdout followed by
/// its exit status, read by a task that feeds `teller`. A stream that ends without the status
/// means the launcher (or its container) went away, and the process with it.
pub(super) async fn spawn_remote<K, E: Vocabulary>(
    remote: &Launchers<K>,
    host: SocketAddr,
    (name, args, log, program): RemoteSpawn<'_>,
    mut teller: Teller<E>,
) -> Result<u32, HarnessError> {
    let url = format!("http://{host}/processes");
    let request = spawn_request(name, args, log, program)?;
    // A role's stderr comes back in the body; it lands in the run directory's log as it would
    // locally.
    let mut log_file = super::program::open_log(log)?;
    let mut response = remote
        .client
        .post(&url)
        .json(&request)
        .send()
        .await
        .map_err(|e| {
            HarnessError::Start(format!(
                "{name}: could not reach its launcher at {url}: {e}"
            ))
        })?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        return Err(HarnessError::Start(format!(
            "{name}: the launcher at {url} answered {status}: {}",
            body.trim()
        )));
    }
    let pid = response
        .headers()
        .get(outage_lab_host::PID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok())
        .ok_or_else(|| {
            HarnessError::Start(format!(
                "{name}: the launcher at {url} did not say the pid ({})",
                outage_lab_host::PID_HEADER
            ))
        })?;
    teller.pid = pid;
    tokio::spawn(async move {
        let mut pending = Vec::new();
        let mut status = None;
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    pending.extend_from_slice(&chunk);
                    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = pending.drain(..=end).collect();
                        let line = String::from_utf8_lossy(&line[..end]);
                        if let Ok(exit) = serde_json::from_str::<outage_lab_host::ExitLine>(&line) {
                            status = Some(exit.host_exit);
                        } else if let Ok(said) =
                            serde_json::from_str::<outage_lab_host::StderrLine>(&line)
                        {
                            use std::io::Write;
                            let _ = writeln!(log_file, "{}", said.host_stderr);
                        } else {
                            teller.hear(&line);
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(process = %teller.source, "lost the stream from its launcher: {e}");
                    break;
                }
            }
        }
        teller.exited(status.unwrap_or_else(|| LOST_WITH_HOST.to_owned()));
    });
    Ok(pid)
}

/// Where the launcher hosts are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hosts {
    /// Through the engine's DNS: every address of `tasks.<service>` (Swarm), else of
    /// `<service>` (compose), each a launcher on this port. Nothing is shared but the network.
    Dns {
        /// The port every launcher listens on.
        port: u16,
    },
    /// Registered in a state directory every launcher mounts (one machine).
    Dir(PathBuf),
}

/// A `--hosts` that says nowhere launchers are found: refused by the command line (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostsError {
    /// `--hosts dns:PORT` whose port is not one.
    #[error("`{given}`: expected dns:PORT with the launchers' port (1-65535), e.g. dns:7070")]
    BadPort {
        /// The value as given.
        given: String,
    },
    /// An empty `--hosts`.
    #[error("expected dns:PORT or a state directory")]
    Empty,
}

impl std::str::FromStr for Hosts {
    type Err = HostsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("dns:") {
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port > 0 => Ok(Self::Dns { port }),
                _ => Err(HostsError::BadPort {
                    given: s.to_owned(),
                }),
            },
            None if s.is_empty() => Err(HostsError::Empty),
            None => Ok(Self::Dir(PathBuf::from(s))),
        }
    }
}

impl std::fmt::Display for Hosts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dns { port } => write!(f, "the engine's DNS (tasks.<service>:{port})"),
            Self::Dir(dir) => write!(f, "{}", dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_found_by_dns_on_a_port_or_in_a_state_directory() {
        assert_eq!("dns:7070".parse(), Ok(Hosts::Dns { port: 7070 }));
        assert_eq!("/lab".parse(), Ok(Hosts::Dir("/lab".into())));
        for bad in ["dns:", "dns:0", "dns:http", "dns:70000", ""] {
            let err = bad.parse::<Hosts>().expect_err(bad).to_string();
            assert!(err.contains("dns:PORT"), "{bad}: {err}");
        }
    }
}
