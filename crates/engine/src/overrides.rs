//! Changes to a scenario given on the command line, for every incident: `--set PATH=VALUE`, and
//! the shorthand `--fix NAME` (`--set fixes.NAME={}`); an incident may add its own (2012's
//! `--servers N`).
//!
//! A setting is applied to the YAML document itself, before parsing, so an overridden value is
//! checked exactly like one written in the file ([`parse_with`]); the run directory's
//! `scenario.yaml` is the effective document, with the settings named at its top. When the
//! effective document is refused but the file alone is not, the first setting that makes it
//! fail is named in the error (`--set dns.ttl=0s: dns.ttl is 0s; expected ...`).

use std::fmt;

use serde_json::{Map, Value};

use crate::located::ScenarioError;

/// Why a command-line setting cannot be made: the argument is not one, or the scenario has no
/// place for it. The message names what the user wrote; `run`, `workshop` and `grid` put
/// `--set ` before the message about a `--set` argument.
#[derive(Debug, thiserror::Error)]
pub enum SettingError {
    /// `--set` without `=`.
    #[error("{arg:?} has no '='; expected PATH=VALUE, e.g. dns.ttl=5s")]
    NoEquals {
        /// The argument as given.
        arg: String,
    },
    /// A path with an empty part (`dns..ttl`).
    #[error("{path:?} is not a path; expected field names joined by '.', e.g. dns.ttl")]
    NotAPath {
        /// The path as given.
        path: String,
    },
    /// A path of more parts than any scenario is deep. Without a bound, a path of thousands of
    /// parts built a document so deep that writing (and dropping) it overflowed the stack.
    #[error("{path:?} has {parts} parts; a path into a scenario has at most {MAX_PATH_PARTS}")]
    TooDeep {
        /// The path as given.
        path: String,
        /// How many parts it has.
        parts: usize,
    },
    /// `--fix` naming no fix.
    #[error("--fix {name}: unknown fix; expected one of {}", .known.join(", "))]
    UnknownFix {
        /// The name as given.
        name: String,
        /// Every fix's name.
        known: &'static [&'static str],
    },
    /// A setting with no path at all.
    #[error("an empty path")]
    EmptyPath,
    /// A list's item named by something that is not an index.
    #[error(
        "{} is a list; expected an item's index (0 to {}), not {key:?}",
        shown(.at),
        .len.saturating_sub(1)
    )]
    NotAnIndex {
        /// The path to the list.
        at: Vec<String>,
        /// Its length.
        len: usize,
        /// What stood where an index should.
        key: String,
    },
    /// An index past a list's end.
    #[error("{} has {len} items; there is no item {index}", shown(.at))]
    NoSuchItem {
        /// The path to the list.
        at: Vec<String>,
        /// Its length.
        len: usize,
        /// The index asked for.
        index: usize,
    },
    /// A path that goes on through a plain value (`fleet.servers.count`).
    #[error(
        "{} is {found}, not a mapping of fields, so nothing can be set inside it",
        shown(.at)
    )]
    NotAMapping {
        /// The path to the plain value.
        at: Vec<String>,
        /// The value there.
        found: Value,
    },
}

/// Most parts a `--set` path may have. The deepest path into a scenario has 5
/// (`timeline.1.dns_update.propagate_to.0`); the bound leaves room, and keeps the document
/// a setting builds shallow enough to write without running out of stack.
pub const MAX_PATH_PARTS: usize = 32;

/// One change: a dotted path into the scenario and the YAML value to put there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The fields from the top (`["fixes", "spare_capacity", "placement_fill"]`).
    pub path: Vec<String>,
    /// The value, as YAML (`0.5`, `2s`, `[dns-a]`, `{ reaction: 2s }`).
    pub value: String,
    /// How the user wrote it, for messages (`--fix dns_verification`).
    pub shown: String,
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl Setting {
    /// `PATH=VALUE`, as given to `--set`.
    pub fn parse(arg: &str) -> Result<Self, SettingError> {
        let (path, value) = arg.split_once('=').ok_or_else(|| SettingError::NoEquals {
            arg: arg.to_owned(),
        })?;
        let parts = path.split('.').count();
        if parts > MAX_PATH_PARTS {
            return Err(SettingError::TooDeep {
                path: path.to_owned(),
                parts,
            });
        }
        let parts: Vec<String> = path.split('.').map(|p| p.trim().to_owned()).collect();
        if parts.iter().any(String::is_empty) {
            return Err(SettingError::NotAPath {
                path: path.to_owned(),
            });
        }
        Ok(Self {
            path: parts,
            value: value.to_owned(),
            shown: format!("--set {arg}"),
        })
    }

    /// `--fix NAME`: the fix on, with its defaults. `known` is every fix's name.
    pub fn fix(name: &str, known: &'static [&'static str]) -> Result<Self, SettingError> {
        if !known.contains(&name) {
            return Err(SettingError::UnknownFix {
                name: name.to_owned(),
                known,
            });
        }
        Ok(Self {
            path: vec!["fixes".into(), name.to_owned()],
            value: "{}".into(),
            shown: format!("--fix {name}"),
        })
    }
}

/// Most command-line settings (`--set`, `--fix`, ...) one scenario takes. When the settings
/// break a valid file, each prefix of them is tried in turn to name the first that does, one
/// parse of the whole document per setting: thousands of them took minutes.
pub const MAX_SETTINGS: usize = 64;

/// The scenario `text` (from `source`) with `settings` applied, parsed and checked by
/// `parse_text` (the incident's parser of one document). The file's own mistake is reported
/// where it is written; a setting that makes a valid file invalid is named in the error.
pub fn parse_with<T>(
    text: &str,
    source: &str,
    settings: &[Setting],
    parse_text: impl Fn(&str, &str) -> Result<T, ScenarioError>,
) -> Result<T, ScenarioError> {
    if settings.is_empty() {
        return parse_text(text, source);
    }
    if settings.len() > MAX_SETTINGS {
        return Err(ScenarioError {
            message: format!(
                "{source}: {} command-line settings (--set, --fix, ...); at most {MAX_SETTINGS} may be given",
                settings.len()
            ),
        });
    }
    let effective = match apply(text, source, settings) {
        Ok(effective) => effective,
        // Not even YAML: the file's own error, where it is.
        Err(e) => return Err(parse_text(text, source).err().unwrap_or(e)),
    };
    let err = match parse_text(&effective, source) {
        Ok(scenario) => return Ok(scenario),
        Err(e) => e,
    };
    parse_text(text, source)?;
    // Else the first setting that breaks it.
    for k in 1..=settings.len() {
        let partial = apply(text, source, &settings[..k])?;
        if let Err(e) = parse_text(&partial, source) {
            let what = finding(&e, source);
            return Err(ScenarioError {
                message: format!("{source}: {}: {what}", settings[k - 1]),
            });
        }
    }
    Err(err)
}

/// The document `text` with `settings` applied, as YAML. `source` names the file in messages.
pub fn apply(text: &str, source: &str, settings: &[Setting]) -> Result<String, ScenarioError> {
    let fail = |what: String| ScenarioError {
        message: format!("{source}: {what}"),
    };
    let mut doc: Value = serde_saphyr::from_str(text)
        .map_err(|e| fail(format!("cannot apply the command line's settings: {e}")))?;
    for setting in settings {
        let value: Value = serde_saphyr::from_str(&setting.value)
            .map_err(|e| fail(format!("{setting}: the value is not YAML: {e}")))?;
        put(&mut doc, &setting.path, value).map_err(|e| fail(format!("{setting}: {e}")))?;
    }
    let yaml = serde_saphyr::to_string(&doc)
        .map_err(|e| fail(format!("cannot write the effective scenario: {e}")))?;
    let shown: Vec<String> = settings.iter().map(ToString::to_string).collect();
    let header = crate::run_dir::settings_header(source, &shown);
    Ok(format!("{header}{yaml}"))
}

/// Puts `value` at `path`, making the mappings on the way that are not there yet. A number
/// picks an item of a list (`timeline.1.dns_update.propagate_to`).
fn put(doc: &mut Value, path: &[String], value: Value) -> Result<(), SettingError> {
    let Some((last, parents)) = path.split_last() else {
        return Err(SettingError::EmptyPath);
    };
    let mut here = doc;
    for (i, key) in parents.iter().enumerate() {
        here = step(here, key, &path[..i], true)?;
    }
    *step(here, last, parents, true)? = value;
    Ok(())
}

/// The value under `key` of `v` (a field of a mapping, or an item of a list by its index);
/// a missing field is made when `make` is set. `at` is the path to `v`.
fn step<'v>(
    v: &'v mut Value,
    key: &str,
    at: &[String],
    make: bool,
) -> Result<&'v mut Value, SettingError> {
    if v.is_null() && make {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(map) => Ok(map.entry(key.to_owned()).or_insert(Value::Null)),
        Value::Array(items) => {
            let len = items.len();
            let index: usize = key.parse().map_err(|_| SettingError::NotAnIndex {
                at: at.to_vec(),
                len,
                key: key.to_owned(),
            })?;
            items.get_mut(index).ok_or(SettingError::NoSuchItem {
                at: at.to_vec(),
                len,
                index,
            })
        }
        other => Err(SettingError::NotAMapping {
            at: at.to_vec(),
            found: other.clone(),
        }),
    }
}

/// A path into the scenario for people: `fleet.servers`, or `the scenario` for its top.
fn shown(at: &[String]) -> String {
    if at.is_empty() {
        "the scenario".to_owned()
    } else {
        at.join(".")
    }
}

/// The message of `err` without the file and position it has in the effective document, whose
/// lines the user never saw: only the first line, the finding itself.
pub fn finding(err: &ScenarioError, source: &str) -> String {
    let first = err.message.lines().next().unwrap_or_default();
    let rest = first.strip_prefix(source).unwrap_or(first);
    // `:LINE:COLUMN: what` or `: what`.
    let mut parts = rest.trim_start_matches(':').splitn(3, ':');
    let (a, b, c) = (parts.next(), parts.next(), parts.next());
    let numeric =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    match (numeric(a) && numeric(b), c) {
        (true, Some(what)) => what.trim().to_owned(),
        _ => rest.trim_start_matches(':').trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_path_deeper_than_any_scenario_is_refused_not_a_stack_overflow() {
        let deep = vec!["a"; 20_000].join(".");
        let err = Setting::parse(&format!("{deep}=1")).expect_err("too deep");
        assert!(
            err.to_string()
                .ends_with("has 20000 parts; a path into a scenario has at most 32"),
            "{err}"
        );
        let deepest = vec!["a"; MAX_PATH_PARTS].join(".");
        let setting = Setting::parse(&format!("{deepest}=1")).expect("as deep as allowed");
        let text = "name: t\n";
        assert!(apply(text, "s.yaml", &[setting]).is_ok());
    }

    #[test]
    fn a_setting_names_a_path_and_a_value() {
        let s = Setting::parse("service.probe.window=7").expect("valid");
        assert_eq!(s.path, ["service", "probe", "window"]);
        assert_eq!(s.value, "7");
        assert!(Setting::parse("service.placement_fill").is_err());
        assert!(Setting::parse("service..fill=1").is_err());
        let e = Setting::fix("magic", &["dns_verification"])
            .expect_err("unknown")
            .to_string();
        assert!(
            e.contains("--fix magic: unknown fix; expected one of dns_verification"),
            "{e}"
        );
    }

    #[test]
    fn settings_replace_values_and_make_the_mappings_they_need() {
        let text = "name: t\nfleet:\n  servers: 3\n";
        let settings = [
            Setting::parse("fleet.servers=30").expect("valid"),
            Setting::parse("fixes.some_fix={ reaction: 2s }").expect("valid"),
        ];
        let yaml = apply(text, "t.yaml", &settings).expect("applies");
        let doc: Value = serde_saphyr::from_str(&yaml).expect("yaml");
        assert_eq!(doc["fleet"]["servers"], 30);
        assert_eq!(doc["fixes"]["some_fix"]["reaction"], "2s");
        assert!(yaml.starts_with("# The scenario t.yaml as run"), "{yaml}");
        assert!(yaml.contains("# --set fleet.servers=30\n"), "{yaml}");
    }

    #[test]
    fn a_number_picks_an_item_of_a_list() {
        let text = "timeline:\n  - a: { at: 1s }\n  - b: { at: 2s, to: [x, y] }\n";
        let yaml = apply(
            text,
            "t.yaml",
            &[Setting::parse("timeline.1.b.to=[x]").expect("valid")],
        )
        .expect("applies");
        let doc: Value = serde_saphyr::from_str(&yaml).expect("yaml");
        assert_eq!(doc["timeline"][1]["b"]["to"], serde_json::json!(["x"]));
        let e = apply(
            text,
            "t.yaml",
            &[Setting::parse("timeline.5.b=1").expect("valid")],
        )
        .expect_err("no such item");
        assert!(
            e.message
                .contains("timeline has 2 items; there is no item 5"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_path_through_a_plain_value_is_refused_with_the_path() {
        let e = apply(
            "fleet:\n  servers: 3\n",
            "t.yaml",
            &[Setting::parse("fleet.servers.x=1").expect("valid")],
        )
        .expect_err("refused");
        assert!(
            e.message
                .contains("--set fleet.servers.x=1: fleet.servers is 3, not a mapping"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_finding_loses_the_position_it_had_in_the_effective_document() {
        let located = ScenarioError {
            message: "t.yaml:4:3: unknown field `x`\n   4 | x: 1".into(),
        };
        assert_eq!(finding(&located, "t.yaml"), "unknown field `x`");
        let plain = ScenarioError {
            message: "t.yaml: name is empty".into(),
        };
        assert_eq!(finding(&plain, "t.yaml"), "name is empty");
    }
}
