//! The agent's on-disk spool of unsent reports: where a failed report goes while there is room.
//!
//! The spool is a file, so what it holds lives in the kernel's page cache, not in the agent's
//! resident memory: an agent with room left in its spool fails for a while before its RSS starts
//! to grow. [`crate::retry`] decides what goes where ([`crate::FailureEffect::Spooled`]); this
//! module only writes the bytes.
//!
//! The file is unlinked as soon as it is created, so it disappears with the process however the
//! process ends (a restart, a kill, a harness killed mid-run): nothing is left on disk.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::retry::LEAK_FILL;

/// An open, already unlinked spool file.
#[derive(Debug)]
pub(crate) struct Spool {
    file: File,
    /// Bytes written so far.
    written: u64,
}

impl Spool {
    /// Creates the spool of server `server` in `dir` (created if missing, as in an image with no
    /// `/tmp`), named after the server and this process, and unlinks it at once.
    pub(crate) fn create(dir: &Path, server: &str) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = spool_path(dir, server);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        std::fs::remove_file(&path)?;
        Ok(Self { file, written: 0 })
    }

    /// Appends `bytes` bytes standing for one unsent report.
    pub(crate) fn write(&mut self, bytes: u64) -> io::Result<()> {
        const CHUNK: [u8; 16 * 1024] = [LEAK_FILL; 16 * 1024];
        let mut left = bytes;
        while left > 0 {
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(CHUNK.len());
            self.file.write_all(&CHUNK[..n])?;
            left -= n as u64;
        }
        self.written += bytes;
        Ok(())
    }

    /// Bytes written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }
}

fn spool_path(dir: &Path, server: &str) -> PathBuf {
    dir.join(format!("outage-lab-spool-{server}-{}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spool_takes_its_bytes_on_disk_and_leaves_no_file_behind() {
        let dir = std::env::temp_dir().join(format!("spool-test-{}", std::process::id()));
        let mut spool = Spool::create(&dir, "s001").expect("create spool");
        spool.write(40 * 1024).expect("write");
        spool.write(1).expect("write");
        assert_eq!(spool.written(), 40 * 1024 + 1);
        assert_eq!(
            spool.file.metadata().expect("metadata").len(),
            40 * 1024 + 1
        );
        let left: Vec<_> = std::fs::read_dir(&dir).expect("read dir").collect();
        assert!(left.is_empty(), "the spool is unlinked at once: {left:?}");
        std::fs::remove_dir(&dir).expect("remove test dir");
    }
}
