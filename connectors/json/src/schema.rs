//! JSON Schemas: compiled once, checked against each record, failures named by path and rule.

use std::fmt::Write as _;
use std::sync::Arc;

use jsonschema::error::ValidationErrorKind;
use jsonschema::{ReferencingError, ValidationError, Validator};
use serde_json::Value;

/// How many failures a message names before it only counts the rest.
const NAMED_FAILURES: usize = 3;

/// A JSON Schema could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The schema is not valid for its draft (by its meta-schema), or it refers (`$ref`) to a
    /// document it does not contain: remote references are never fetched.
    #[error("invalid JSON Schema: {message}")]
    InvalidSchema {
        /// What was wrong, and where in the schema.
        message: String,
    },
}

/// A JSON Schema, compiled, with its canonical text.
#[derive(Clone)]
pub(crate) struct Schema {
    document: Value,
    canonical: String,
    validator: Arc<Validator>,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.canonical)
    }
}

impl Schema {
    /// Compiles `document` (its draft from `$schema`, 2020-12 without one), offline: a `$ref`
    /// outside the document fails here instead of being fetched.
    pub(crate) fn compile(document: Value) -> Result<Self, JsonError> {
        let validator = jsonschema::options()
            .offline()
            .build(&document)
            .map_err(|e| {
                let mut message = if e.instance_path().as_str().is_empty() {
                    e.to_string()
                } else {
                    format!("at {}: {e}", e.instance_path())
                };
                if let ValidationErrorKind::Referencing(ReferencingError::Unretrievable {
                    ..
                }) = e.kind()
                {
                    message.push_str(
                        " (documents outside the schema are never fetched: bundle them under `$defs`)",
                    );
                }
                JsonError::InvalidSchema { message }
            })?;
        let mut canonical = String::new();
        write_canonical(&document, &mut canonical);
        Ok(Schema {
            document,
            canonical,
            validator: Arc::new(validator),
        })
    }

    /// The schema as given.
    pub(crate) fn document(&self) -> &Value {
        &self.document
    }

    /// The schema as compact JSON with object keys sorted: equal for equal schemas however
    /// their keys were ordered.
    pub(crate) fn canonical(&self) -> &str {
        &self.canonical
    }

    /// Checks `instance`; on failure, names the first few failures (instance path, what was
    /// wrong, the schema rule) and counts the rest. Instance values are left out of the
    /// text (records may carry personal data, and the message goes to logs and dead-letter
    /// headers).
    pub(crate) fn check(&self, instance: &Value) -> Result<(), String> {
        // The common case takes the fast path, which collects no errors.
        if self.validator.is_valid(instance) {
            return Ok(());
        }
        let mut failures = self.validator.iter_errors(instance);
        let Some(first) = failures.next() else {
            return Ok(());
        };
        let mut text = describe(&first);
        let mut named = 1;
        let mut more = 0_usize;
        for failure in failures {
            if named < NAMED_FAILURES {
                text.push_str("; ");
                text.push_str(&describe(&failure));
                named += 1;
            } else {
                more += 1;
            }
        }
        if more > 0 {
            let _ = write!(text, "; and {more} more");
        }
        Err(text)
    }
}

/// One failure: `<instance path>: <what> (rule <keyword> at <schema path>)`.
fn describe(failure: &ValidationError<'_>) -> String {
    let path = failure.instance_path().as_str();
    let at = if path.is_empty() { "(root)" } else { path };
    format!(
        "{at}: {} (rule `{}` at {})",
        failure.masked(),
        failure.kind().keyword(),
        failure.schema_path()
    )
}

/// Writes `value` as compact JSON with the keys of every object sorted.
fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_text_ignores_key_order_and_whitespace() {
        let a: Value = serde_json::from_str(
            r#"{"type": "object", "properties": {"b": {}, "a": {"minimum": 1}}}"#,
        )
        .unwrap();
        let b: Value =
            serde_json::from_str(r#"{"properties":{"a":{"minimum":1},"b":{}},"type":"object"}"#)
                .unwrap();
        let (a, b) = (Schema::compile(a).unwrap(), Schema::compile(b).unwrap());
        assert_eq!(a.canonical(), b.canonical());
        assert_eq!(
            a.canonical(),
            r#"{"properties":{"a":{"minimum":1},"b":{}},"type":"object"}"#
        );
        // The canonical text is JSON for the same schema.
        let back: Value = serde_json::from_str(a.canonical()).unwrap();
        assert_eq!(&back, a.document());
    }

    #[test]
    fn failures_past_the_first_few_are_counted_not_named() {
        let schema = Schema::compile(json!({
            "type": "array",
            "items": {"type": "integer"}
        }))
        .unwrap();
        let err = schema
            .check(&json!(["a", "b", "c", "d", "e", 1]))
            .unwrap_err();
        for named in ["/0:", "/1:", "/2:"] {
            assert!(err.contains(named), "{err}");
        }
        assert!(!err.contains("/3:"), "{err}");
        assert!(err.ends_with("; and 2 more"), "{err}");
    }

    #[test]
    fn messages_leave_the_records_values_out() {
        let schema = Schema::compile(json!({
            "properties": {"card": {"type": "string", "pattern": "^[0-9]{16}$"}}
        }))
        .unwrap();
        let err = schema
            .check(&json!({"card": "4111-1111-secret"}))
            .unwrap_err();
        assert!(!err.contains("secret"), "{err}");
        assert!(err.contains("/card"), "{err}");
        assert!(
            err.contains("rule `pattern` at /properties/card/pattern"),
            "{err}"
        );
    }

    #[test]
    fn a_failure_at_the_root_says_so() {
        let schema = Schema::compile(json!({"required": ["id"]})).unwrap();
        let err = schema.check(&json!({})).unwrap_err();
        assert!(err.starts_with("(root): "), "{err}");
        assert!(err.contains("rule `required` at /required"), "{err}");
    }
}
