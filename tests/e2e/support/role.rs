//! One role process of the real binary, started alone (no harness) for a test that talks to it
//! directly.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use outage_lab_ebs_events::Event;

use super::bin;

/// A role process, killed and reaped on every path out of the test.
pub struct RoleProcess {
    /// The process.
    pub child: Child,
    /// The addresses its Ready event named, by purpose (`http`, `dns`, `admin`).
    pub addrs: BTreeMap<String, SocketAddr>,
}

impl RoleProcess {
    /// Starts `outage-lab ROLE --config FILE ARGS...`, FILE being `config` written into `dir`,
    /// and waits up to 20 s for its Ready event.
    pub fn start(role: &str, dir: &Path, config: &str, args: &[&str]) -> Self {
        let file = dir.join(format!("{role}-{}.json", config.len()));
        std::fs::write(&file, config).unwrap();
        let mut child = Command::new(bin())
            .args([role, "--config", file.to_str().unwrap()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(Event::Ready { addrs, .. }) = serde_json::from_str::<Event>(&line) {
                    let _ = tx.send(addrs);
                }
            }
        });
        let mut process = Self {
            child,
            addrs: BTreeMap::new(),
        };
        process.addrs = (rx.recv_timeout(Duration::from_secs(20)))
            .unwrap_or_else(|_| panic!("{} said Ready within 20 s", file.display()));
        process
    }
}

impl Drop for RoleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
