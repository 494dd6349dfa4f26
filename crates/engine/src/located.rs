//! Where a scenario's values were written, and errors that say so: `file:line:column: what`.
//!
//! Values whose types come from this crate carry their position ([`Spanned`]); values whose types
//! come from the role crates do not, so their place is found again in the text, only when a check
//! on one of them fails ([`Places`]). Parser errors are rewritten for people who write scenarios
//! ([`yaml_error`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde_saphyr::Spanned;

/// A scenario that could not be read or is not valid. The message is complete: it names the file,
/// the line and column where it has them, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    /// `file:line:column: what` (or `file: what` when there is no position).
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ScenarioError {}

/// Turns a finding about the scenario into a located error.
#[derive(Debug, Clone, Copy)]
pub struct Locator<'a> {
    /// The file's name, as the user gave it.
    source: &'a str,
    /// Its text, read again for values without a position of their own.
    text: &'a str,
}

impl<'a> Locator<'a> {
    /// A locator for `text`, read from `source`.
    pub fn new(source: &'a str, text: &'a str) -> Self {
        Self { source, text }
    }

    /// `what`, at the place `value` was written (a default has none: then just the file).
    pub fn at<T>(&self, value: &Spanned<T>, what: String) -> ScenarioError {
        self.line_column(value.referenced.line(), value.referenced.column(), &what)
    }

    /// `what`, at the place `paths[0]` was written; else the first of the others that was
    /// written; else the nearest written part of `paths[0]` (the mapping a default belongs in).
    pub fn at_path(&self, paths: &[&[&str]], what: String) -> ScenarioError {
        let places = Places::read(self.text).unwrap_or_default();
        let found = (paths.iter())
            .find_map(|p| places.exact(p))
            .or_else(|| paths.first().and_then(|p| places.nearest(p)));
        match found {
            Some(loc) => self.line_column(loc.line(), loc.column(), &what),
            None => self.plain(what),
        }
    }

    /// Whether the document spells out `path` (a default is not written).
    pub fn written(&self, path: &[&str]) -> bool {
        (Places::read(self.text).unwrap_or_default())
            .exact(path)
            .is_some()
    }

    /// `what`, about the file as a whole.
    pub fn plain(&self, what: String) -> ScenarioError {
        ScenarioError {
            message: format!("{}: {what}", self.source),
        }
    }

    fn line_column(&self, line: u64, column: u64, what: &str) -> ScenarioError {
        if line == 0 {
            // A default: it has no place in the file.
            return self.plain(what.to_owned());
        }
        ScenarioError {
            message: format!("{}:{line}:{column}: {what}", self.source),
        }
    }
}

/// Turns a YAML/serde error into `file:line:column: message`, followed by the snippet the parser
/// renders (the offending line with a caret). The message is [`ScenarioMessages`]'s: for people
/// who write scenarios, saying what was expected, with no advice about parser options.
pub fn yaml_error(err: &serde_saphyr::Error, source: &str) -> ScenarioError {
    use serde_saphyr::MessageFormatter;

    let mut original = err;
    while let serde_saphyr::Error::WithSnippet { error, .. }
    | serde_saphyr::Error::AliasError { error, .. } = original
    {
        original = error;
    }
    // Called directly, a formatter does not neutralise control characters (a key may hold any).
    let what: String = ScenarioMessages
        .format_message(original)
        .chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect();
    let snippet = err.render_with_options(serde_saphyr::render_options! {
        formatter: &ScenarioMessages,
        source_name: Some(source),
    });
    let snippet: Vec<&str> = snippet.lines().skip(1).collect();
    let head = match err.location() {
        Some(loc) => format!("{source}:{}:{}: {what}", loc.line(), loc.column()),
        None => format!("{source}: {what}"),
    };
    let message = if snippet.is_empty() {
        head
    } else {
        format!("{head}\n{}", snippet.join("\n"))
    };
    ScenarioError { message }
}

/// The parser's user-facing messages, with the few that do not say what was expected (or that
/// give advice meant for programmers) rewritten.
struct ScenarioMessages;

impl serde_saphyr::MessageFormatter for ScenarioMessages {
    fn format_message<'a>(&self, err: &'a serde_saphyr::Error) -> std::borrow::Cow<'a, str> {
        use serde_saphyr::Error;
        use serde_saphyr::localizer::ExternalMessageSource;
        let expected = match err {
            Error::InvalidScalar { ty, .. } => match *ty {
                "u8" | "u16" | "u32" | "u64" | "usize" => {
                    let max = match *ty {
                        "u8" => u64::from(u8::MAX),
                        "u16" => u64::from(u16::MAX),
                        "u32" => u64::from(u32::MAX),
                        _ => u64::MAX,
                    };
                    Some(format!(
                        "invalid {ty}: expected a whole number from 0 to {max}"
                    ))
                }
                "i8" | "i16" | "i32" | "i64" | "isize" => {
                    Some(format!("invalid {ty}: expected a whole number"))
                }
                "f32" | "f64" => Some(format!("invalid {ty}: expected a number, e.g. 0.5")),
                "bool" => Some(format!("invalid {ty}: expected true or false")),
                _ => None,
            },
            Error::DuplicateMappingKey { key: Some(key), .. } => Some(format!(
                "duplicate key `{key}`; expected each field at most once"
            )),
            Error::DuplicateMappingKey { key: None, .. } => {
                Some("duplicate key; expected each field at most once".into())
            }
            Error::MultipleDocuments { .. } => Some(
                "a second YAML document starts here; expected exactly one scenario per file".into(),
            ),
            Error::Eof { .. } => {
                Some("unexpected end of file; expected the rest of the scenario".into())
            }
            Error::SerdeMissingField { field, .. } => Some(format!(
                "missing field `{field}`; expected it in this mapping (it has no default)"
            )),
            Error::Unexpected {
                expected: "mapping start",
                ..
            } => Some("expected a mapping of `field: value` lines here".into()),
            // `outage_lab_proto::UnitError::Overflow` says what, not what would fit.
            Error::Message { msg, .. } if msg.ends_with(" is too large") => {
                if msg.starts_with("size ") {
                    Some(format!("{msg}; expected at most {}GiB", u64::MAX >> 30))
                } else if msg.starts_with("duration ") {
                    Some(format!(
                        "{msg}; expected at most {}h",
                        u64::MAX / 2 / 3_600_000
                    ))
                } else {
                    None
                }
            }
            Error::ExternalMessage { source, msg, .. }
                if matches!(**source, ExternalMessageSource::Parser(_)) =>
            {
                let hint = if msg.contains("tab") {
                    "; indent with spaces"
                } else {
                    ""
                };
                Some(format!("YAML syntax error: {msg}{hint}"))
            }
            _ => None,
        };
        match expected {
            Some(text) => std::borrow::Cow::Owned(text),
            None => serde_saphyr::UserMessageFormatter.format_message(err),
        }
    }
}

/// Where each value of a scenario was written, for the values whose types come from the role
/// crates and so carry no position of their own (the agent's retry policy, the watchdog's
/// alarms, the name). Read from the text a second time, only when a check on one of them fails.
/// Keys are field names (sequence items are keyed by their index).
#[derive(Debug, Default)]
struct Places(BTreeMap<String, Spanned<Places>>);

impl Places {
    /// The places of `text`, which has already parsed as a scenario; `None` if they cannot be
    /// read (the message then goes without a position).
    fn read(text: &str) -> Option<Self> {
        let options = serde_saphyr::options! {
            // `.nan` is a valid f64 to the scenario (and refused by its checks); here it is
            // only a value whose place is wanted.
            non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::PassThrough,
        };
        serde_saphyr::from_str_with_options(text, options).ok()
    }

    /// Where `path` itself was written.
    fn exact(&self, path: &[&str]) -> Option<serde_saphyr::Location> {
        let (first, rest) = path.split_first()?;
        let here = self.0.get(*first)?;
        if rest.is_empty() {
            Some(here.referenced)
        } else {
            here.value.exact(rest)
        }
    }

    /// Where `path` was written, or else the deepest part of it that was: a value left to its
    /// default has no place, the mapping it belongs in may.
    fn nearest(&self, path: &[&str]) -> Option<serde_saphyr::Location> {
        let (first, rest) = path.split_first()?;
        let here = self.0.get(*first)?;
        here.value.nearest(rest).or(Some(here.referenced))
    }
}

impl<'de> Deserialize<'de> for Places {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PlacesVisitor)
    }
}

struct PlacesVisitor;

impl<'de> serde::de::Visitor<'de> for PlacesVisitor {
    type Value = Places;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Places, E> {
        Ok(Places::default())
    }
    fn visit_i64<E>(self, _: i64) -> Result<Places, E> {
        Ok(Places::default())
    }
    fn visit_i128<E>(self, _: i128) -> Result<Places, E> {
        Ok(Places::default())
    }
    fn visit_u64<E>(self, _: u64) -> Result<Places, E> {
        Ok(Places::default())
    }
    fn visit_u128<E>(self, _: u128) -> Result<Places, E> {
        Ok(Places::default())
    }
    fn visit_f64<E>(self, _: f64) -> Result<Places, E> {
        Ok(Places::default())
    }
    fn visit_str<E>(self, _: &str) -> Result<Places, E> {
        Ok(Places::default())
    }
    fn visit_bytes<E>(self, _: &[u8]) -> Result<Places, E> {
        Ok(Places::default())
    }
    fn visit_unit<E>(self) -> Result<Places, E> {
        Ok(Places::default())
    }
    fn visit_none<E>(self) -> Result<Places, E> {
        Ok(Places::default())
    }
    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Places, D::Error> {
        Places::deserialize(d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Places, A::Error> {
        let mut places = BTreeMap::new();
        let mut index = 0usize;
        while let Some(item) = seq.next_element::<Spanned<Places>>()? {
            places.insert(index.to_string(), item);
            index += 1;
        }
        Ok(Places(places))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Places, A::Error> {
        let mut places = BTreeMap::new();
        // The text parsed as a scenario, so every key is a field name.
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value::<Spanned<Places>>()?;
            places.insert(key, value);
        }
        Ok(Places(places))
    }
}
