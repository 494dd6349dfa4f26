//! What a fix did: one `fix_applied` journal event.

use outage_lab_ebs_events::Event;

use crate::kinds::FixName;

/// One thing a fix did, for the journal (`fix_applied`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// The fix.
    pub fix: FixName,
    /// The storage server it acted on.
    pub server: Option<String>,
    /// The process it acted on (its name as the journal writes it).
    pub process: Option<String>,
    /// What it saw and did.
    pub detail: String,
}

impl Action {
    /// As a journal event.
    pub fn event(self) -> Event {
        Event::FixApplied {
            fix: self.fix.name().to_owned(),
            server: self.server,
            process: self.process,
            detail: self.detail,
        }
    }
}
