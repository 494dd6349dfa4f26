//! Where the lease manager keeps the leases it granted: a file it appends one line to per
//! renewal (`<server> <expiry, ms since the Unix epoch>`), read back when it starts. A restarted
//! manager has lost its queue, as a killed process does, but not the leases its servers hold,
//! as a lease service keeps them in durable storage.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The leases by server, each valid until its instant.
pub type Leases = HashMap<String, Instant>;

/// The file the renewals are appended to; none when the manager keeps no ledger.
#[derive(Debug, Default)]
pub struct Ledger {
    file: Mutex<Option<File>>,
}

impl Ledger {
    /// Opens the ledger at `path` for appending; the leases it holds that are still valid.
    pub fn open(path: &Path) -> std::io::Result<(Ledger, Leases)> {
        let leases = match std::fs::read_to_string(path) {
            Ok(text) => read(&text, SystemTime::now(), Instant::now()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Leases::new(),
            Err(e) => return Err(e),
        };
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let ledger = Ledger {
            file: Mutex::new(Some(file)),
        };
        Ok((ledger, leases))
    }

    /// Writes down that `server`'s lease is valid until `until`. A write that fails is logged:
    /// the lease still holds in memory, only a restart would forget it.
    pub fn record(&self, server: &str, until: Instant) {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        let Some(file) = file.as_mut() else {
            return;
        };
        let expiry = SystemTime::now() + until.saturating_duration_since(Instant::now());
        let ms = expiry
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        if let Err(e) = writeln!(file, "{server} {ms}") {
            tracing::warn!("the lease ledger: {e}");
        }
    }
}

/// The leases still valid at `now` (`wall` by the system clock), the last line of each server
/// winning; lines that do not parse are skipped.
fn read(text: &str, wall: SystemTime, now: Instant) -> Leases {
    let now_ms = wall
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let mut leases = Leases::new();
    for line in text.lines() {
        let Some((server, ms)) = line.split_once(' ') else {
            continue;
        };
        let Ok(ms) = ms.parse::<u128>() else {
            continue;
        };
        match ms.checked_sub(now_ms) {
            Some(left) => {
                let left = Duration::from_millis(u64::try_from(left).unwrap_or(u64::MAX));
                leases.insert(server.to_owned(), now + left);
            }
            None => {
                leases.remove(server);
            }
        }
    }
    leases
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_of_each_server_wins_and_expired_leases_are_dropped() {
        let wall = UNIX_EPOCH + Duration::from_secs(1000);
        let now = Instant::now();
        let text = "d0001 1002000\nd0002 1003000\nd0001 999000\nbroken\nd0003 x\n";
        let leases = read(text, wall, now);
        assert_eq!(leases.len(), 1, "{leases:?}");
        assert_eq!(leases["d0002"], now + Duration::from_secs(3));
    }

    #[test]
    fn a_restarted_manager_reads_back_what_it_wrote() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("leases");
        let (ledger, leases) = Ledger::open(&path).expect("opens");
        assert!(leases.is_empty());
        ledger.record("d0007", Instant::now() + Duration::from_secs(4));
        drop(ledger);
        let (_, leases) = Ledger::open(&path).expect("opens again");
        let left = leases["d0007"].saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(3), "{left:?}");
    }
}
