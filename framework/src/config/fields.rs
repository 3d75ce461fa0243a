//! The layers flattened to dotted keys, and typed readers that check each key and collect problems.

use std::collections::BTreeMap;

use super::{setting, Kind, RecordErrorHandler};
use crate::snapshot::StoreLocation;

/// A leaf value with where it came from.
pub(super) struct Entry {
    pub(super) value: String,
    pub(super) origin: String,
}

pub(super) fn flatten(
    prefix: &str,
    table: config::Map<String, config::Value>,
    out: &mut BTreeMap<String, Entry>,
) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        let origin = match value.origin() {
            None => "a command-line flag".to_owned(),
            Some("the environment") => format!(
                "environment variable EDDY__{}",
                path.replace('.', "__").to_uppercase()
            ),
            Some(file) => file.to_owned(),
        };
        match value.kind {
            config::ValueKind::Table(t) => flatten(&path, t, out),
            _ => {
                let text = value.to_string();
                out.insert(
                    path,
                    Entry {
                        value: text,
                        origin,
                    },
                );
            }
        }
    }
}

/// Validation state: the flat keys left to check and the problems found.
pub(super) struct Fields {
    pub(super) entries: BTreeMap<String, Entry>,
    pub(super) problems: Vec<String>,
}

impl Fields {
    pub(super) fn new(entries: BTreeMap<String, Entry>) -> Self {
        Fields {
            entries,
            problems: Vec::new(),
        }
    }

    fn take(&mut self, key: &str) -> Option<Entry> {
        self.entries.remove(key)
    }

    /// How `key` is read, from its declaration; a key used here but not declared is a bug,
    /// reported as a problem rather than a panic.
    fn declared(&mut self, key: &str) -> Option<Kind> {
        let kind = setting(key).map(|s| s.kind);
        if kind.is_none() {
            self.problems.push(format!(
                "`{key}` has no declaration in config::schema (a bug in Eddy)"
            ));
        }
        kind
    }

    /// The text of `key`, or its declared default.
    pub(super) fn text(&mut self, key: &str) -> Option<String> {
        let default = match self.declared(key) {
            Some(Kind::Text { value, .. }) => value,
            _ => None,
        };
        self.take(key)
            .map(|e| e.value)
            .or_else(|| default.map(str::to_owned))
    }

    /// Reads `text`, the value of `key`, as a snapshot store location (a problem otherwise).
    pub(super) fn location(&mut self, key: &str, text: &str) -> Option<StoreLocation> {
        match StoreLocation::parse(text) {
            Ok(location) => Some(location),
            Err(e) => {
                self.problems.push(format!("`{key}`: {e}"));
                None
            }
        }
    }

    pub(super) fn required(&mut self, key: &str) -> String {
        match self.take(key) {
            Some(e) if !e.value.trim().is_empty() => e.value,
            Some(e) => {
                self.problems
                    .push(format!("`{key}` is empty (set by {})", e.origin));
                String::new()
            }
            None => {
                let env = format!("EDDY__{}", key.replace('.', "__").to_uppercase());
                self.problems.push(format!(
                    "`{key}` is required (set it in the file, with {env} or a flag)"
                ));
                String::new()
            }
        }
    }

    pub(super) fn number(&mut self, key: &str) -> u64 {
        let Some(Kind::Number { default, min, max }) = self.declared(key) else {
            return 0;
        };
        let Some(e) = self.take(key) else {
            return default;
        };
        match e.value.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                self.problems.push(format!(
                    "`{key}` = `{}` (set by {}) is not a whole number from {min} to {max}",
                    e.value, e.origin
                ));
                default
            }
        }
    }

    /// The declared choice `key` holds (its first when unset or invalid).
    pub(super) fn choice(&mut self, key: &str) -> &'static str {
        let Some(Kind::Choice { choices }) = self.declared(key) else {
            return "";
        };
        let default = choices.first().copied().unwrap_or("");
        let Some(e) = self.take(key) else {
            return default;
        };
        match choices.iter().find(|c| **c == e.value.trim()) {
            Some(c) => c,
            None => {
                self.problems.push(format!(
                    "`{key}` = `{}` (set by {}) is not one of: {}",
                    e.value,
                    e.origin,
                    choices.join(", ")
                ));
                default
            }
        }
    }

    /// A declared optional whole number: `None` when unset.
    pub(super) fn optional_number(&mut self, key: &str) -> Option<i32> {
        let Some(Kind::OptionalNumber { min, max, .. }) = self.declared(key) else {
            return None;
        };
        let e = self.take(key)?;
        match e.value.trim().parse::<i32>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.problems.push(format!(
                    "`{key}` = `{}` (set by {}) is not a whole number from {min} to {max}",
                    e.value, e.origin
                ));
                None
            }
        }
    }

    /// The handler `name` chose for `key`, with the dead-letter topic it may need.
    pub(super) fn record_handler(
        &mut self,
        key: &str,
        name: &str,
        dead_letter_topic: &Option<String>,
    ) -> RecordErrorHandler {
        match (name, dead_letter_topic) {
            ("skip", _) => RecordErrorHandler::Skip,
            ("dead_letter", Some(topic)) if !topic.is_empty() => {
                RecordErrorHandler::DeadLetter(topic.clone())
            }
            ("dead_letter", _) => {
                self.problems.push(format!(
                    "`{key}` = `dead_letter` needs `errors.dead_letter_topic`"
                ));
                RecordErrorHandler::Fail
            }
            _ => RecordErrorHandler::Fail,
        }
    }

    pub(super) fn name(&mut self, key: &str, value: &str) {
        let ok = value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !value.is_empty() && !ok {
            self.problems.push(format!(
                "`{key}` = `{value}` may only hold ASCII letters, digits, `.`, `_` and `-` (it names Kafka topics and directories)"
            ));
        }
    }
}
