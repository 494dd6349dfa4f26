//! The 2012 incident's command-line settings: the engine's (`--set PATH=VALUE`, `--fix NAME`,
//! [`outage_lab_engine::overrides`]) and its own shorthand `--servers N` (`--set
//! fleet.servers=N`).

pub use outage_lab_engine::overrides::{Setting, SettingError};

/// `--servers N`.
pub fn servers(n: u32) -> Setting {
    Setting {
        path: vec!["fleet".into(), "servers".into()],
        value: n.to_string(),
        shown: format!("--servers {n}"),
    }
}
