//! A failure of the harness itself (exit code 3), as opposed to an expectation that failed.

/// A failure of the harness itself (exit code 3): a process would not start, a fault could not be
/// injected, the run directory could not be written.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A file-system operation failed.
    #[error("could not {what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A process did not start or did not become ready.
    #[error("a process did not start: {0}")]
    Start(String),
    /// A step of the timeline could not be applied.
    #[error("could not inject {action}: {detail}")]
    Fault {
        /// The step's name.
        action: String,
        /// What went wrong.
        detail: String,
    },
}

impl HarnessError {
    /// An I/O failure while doing `what`.
    pub fn io(what: String, source: std::io::Error) -> Self {
        Self::Io { what, source }
    }
}
