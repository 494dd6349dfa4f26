//! The fixes AWS named after the event, each a mechanism in one module: what the enactors do
//! differently when it is on.

pub(crate) mod cleanup_keeps_active_plan;
pub(crate) mod enactor_checks_at_write;

use serde::{Deserialize, Serialize};

/// Which fixes an enactor runs with (all off: the automation as it was in October 2025).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixes {
    /// The freshness check is made per endpoint, at write time, as a compare-and-set on the
    /// generation in the plan store: an old plan cannot be written over a newer one.
    #[serde(default)]
    pub enactor_checks_at_write: bool,
    /// Clean-up never deletes a plan an endpoint still uses.
    #[serde(default)]
    pub cleanup_keeps_active_plan: bool,
}
