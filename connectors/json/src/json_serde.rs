//! Serdes that write serde_json's encoding and read it back, checking each record against an
//! optional JSON Schema.

use std::marker::PhantomData;

use eddy::serde::{Serde, SerdeError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::schema::Schema;
use crate::JsonError;

/// The format of a serde without a schema.
const PLAIN_FORMAT: &str = "json";
/// The prefix of a schema'd serde's format; the schema's canonical text follows.
const SCHEMA_FORMAT_PREFIX: &str = "json-schema:";
/// The prefix of the format of `eddy::serde::JsonSerde`, whose bytes are the same encoding.
const FRAMEWORK_FORMAT_PREFIX: &str = "json:";

/// The part both serdes share: the optional schema, the format and the checks.
#[derive(Debug, Clone, Default)]
struct Codec {
    schema: Option<Schema>,
}

impl Codec {
    fn with_schema(schema: Value) -> Result<Self, JsonError> {
        Ok(Codec {
            schema: Some(Schema::compile(schema)?),
        })
    }

    /// Refuses to write `value` when it breaks the schema.
    fn check_write(&self, value: &Value) -> Result<(), SerdeError> {
        match &self.schema {
            Some(schema) => schema.check(value).map_err(|failures| {
                SerdeError::new(format!(
                    "refusing to write a record that breaks the JSON Schema: {failures}"
                ))
            }),
            None => Ok(()),
        }
    }

    /// Refuses a record read that breaks the schema: the record's fault, so the app's
    /// deserialization handler decides (fail, skip, dead letter).
    fn check_read(&self, value: &Value) -> Result<(), SerdeError> {
        match &self.schema {
            Some(schema) => schema.check(value).map_err(|failures| {
                SerdeError::new(format!("a record breaks the JSON Schema: {failures}"))
            }),
            None => Ok(()),
        }
    }

    fn format(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{SCHEMA_FORMAT_PREFIX}{}", schema.canonical()),
            None => PLAIN_FORMAT.to_owned(),
        }
    }

    /// Without a schema: reads whatever was written as JSON, by this crate's serdes (with or
    /// without a schema) or by `eddy::serde::JsonSerde` (whether each record fits the Rust
    /// type is decided record by record, as for any JSON). With a schema: reads data written
    /// under the same schema; for any other (another schema, or none) the answer is `None`,
    /// unknown, since whether every record written then satisfies this schema cannot be told
    /// from the two formats, and the runtime then refuses the changed format.
    fn reads_format(&self, written: &str) -> Option<Result<(), String>> {
        match &self.schema {
            None => (written == PLAIN_FORMAT
                || written.starts_with(SCHEMA_FORMAT_PREFIX)
                || written.starts_with(FRAMEWORK_FORMAT_PREFIX))
            .then_some(Ok(())),
            Some(schema) => {
                let same = written
                    .strip_prefix(SCHEMA_FORMAT_PREFIX)
                    .is_some_and(|canonical| canonical == schema.canonical());
                same.then_some(Ok(()))
            }
        }
    }
}

/// The bytes of a record, or the error a null gets.
fn present(bytes: Option<&[u8]>) -> Result<&[u8], SerdeError> {
    bytes.ok_or_else(|| {
        SerdeError::new("a null is not a JSON record (wrap the serde in Nullable to accept nulls)")
    })
}

/// A serde_json error while decoding as a serde error: bad syntax, or JSON that does not fit
/// the type. serde_json's text ends with the line and column.
fn decode_error(e: &serde_json::Error, what: &str) -> SerdeError {
    if e.is_data() {
        SerdeError::new(format!("JSON that does not fit {what}: {e}"))
    } else {
        SerdeError::new(format!("invalid JSON: {e}"))
    }
}

/// serde_json's encoding of a Rust type that derives serde's `Serialize` and `Deserialize`,
/// checked against a JSON Schema when built [`with_schema`](Self::with_schema).
///
/// The bytes are those of `serde_json::to_vec` (fields in declaration order) with or without
/// a schema, so adding one changes no key's bytes. Unlike `eddy::serde::JsonSerde`, its
/// format does not name the Rust type: see [`reads_format`](Serde::reads_format) on
/// [`JsonSerde`] for what a savepoint restore accepts.
///
/// ```
/// use eddy::serde::Serde;
/// use eddy_json::JsonSerde;
///
/// #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
/// struct Payment {
///     id: String,
///     amount: i64,
/// }
///
/// let payments: JsonSerde<Payment> = JsonSerde::with_schema(serde_json::json!({
///     "type": "object",
///     "properties": {"amount": {"type": "integer", "minimum": 0}},
///     "required": ["id", "amount"]
/// }))?;
/// let refund = Payment { id: "p1".into(), amount: -5 };
/// let err = payments.serialize(&refund).unwrap_err();
/// assert!(err.message().contains("/amount"));
/// # Ok::<(), eddy_json::JsonError>(())
/// ```
pub struct JsonSerde<T> {
    codec: Codec,
    _type: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for JsonSerde<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSerde")
            .field("type", &std::any::type_name::<T>())
            .field("schema", &self.codec.schema)
            .finish()
    }
}

impl<T> Clone for JsonSerde<T> {
    fn clone(&self) -> Self {
        JsonSerde {
            codec: self.codec.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> Default for JsonSerde<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> JsonSerde<T> {
    /// A serde without a schema: any JSON that decodes into `T` is read.
    pub fn new() -> Self {
        JsonSerde {
            codec: Codec::default(),
            _type: PhantomData,
        }
    }

    /// A serde that writes and reads only records valid under `schema` (its draft named by
    /// `$schema`, 2020-12 without one; `format` is an annotation, not checked). The schema is
    /// compiled here, once.
    ///
    /// # Errors
    /// Fails when `schema` is not a valid JSON Schema, or refers to a document outside
    /// itself: remote `$ref`s are never fetched, so bundle them under `$defs`.
    pub fn with_schema(schema: Value) -> Result<Self, JsonError> {
        Ok(JsonSerde {
            codec: Codec::with_schema(schema)?,
            _type: PhantomData,
        })
    }

    /// The schema, if the serde has one.
    pub fn schema(&self) -> Option<&Value> {
        self.codec.schema.as_ref().map(Schema::document)
    }
}

impl<T> Serde<T> for JsonSerde<T>
where
    T: Serialize + DeserializeOwned + 'static,
{
    fn serialize(&self, value: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        let encoding_failed = |e: serde_json::Error| {
            SerdeError::new(format!(
                "JSON encoding of {} failed: {e}",
                std::any::type_name::<T>()
            ))
        };
        if self.codec.schema.is_some() {
            let tree = serde_json::to_value(value).map_err(encoding_failed)?;
            self.codec.check_write(&tree)?;
        }
        serde_json::to_vec(value).map(Some).map_err(encoding_failed)
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, SerdeError> {
        let bytes = present(bytes)?;
        let what = std::any::type_name::<T>();
        if self.codec.schema.is_none() {
            return serde_json::from_slice(bytes).map_err(|e| decode_error(&e, what));
        }
        let tree: Value = serde_json::from_slice(bytes).map_err(|e| decode_error(&e, what))?;
        self.codec.check_read(&tree)?;
        serde_json::from_value(tree).map_err(|e| {
            // A tree carries no positions: decode the bytes again for the line and column
            // (only on this failure path).
            match serde_json::from_slice::<T>(bytes) {
                Err(positioned) => decode_error(&positioned, what),
                Ok(_) => decode_error(&e, what),
            }
        })
    }

    fn format(&self) -> String {
        self.codec.format()
    }

    fn reads_format(&self, written: &str) -> Option<Result<(), String>> {
        self.codec.reads_format(written)
    }
}

/// JSON as [`serde_json::Value`]s, for code that does not map records to Rust types, checked
/// against a JSON Schema when built [`with_schema`](Self::with_schema) as [`JsonSerde`] is.
#[derive(Debug, Clone, Default)]
pub struct GenericJsonSerde {
    codec: Codec,
}

impl GenericJsonSerde {
    /// A serde without a schema: any JSON document is read.
    pub fn new() -> Self {
        GenericJsonSerde::default()
    }

    /// A serde that writes and reads only records valid under `schema`.
    ///
    /// # Errors
    /// As [`JsonSerde::with_schema`].
    pub fn with_schema(schema: Value) -> Result<Self, JsonError> {
        Ok(GenericJsonSerde {
            codec: Codec::with_schema(schema)?,
        })
    }

    /// The schema, if the serde has one.
    pub fn schema(&self) -> Option<&Value> {
        self.codec.schema.as_ref().map(Schema::document)
    }
}

impl Serde<Value> for GenericJsonSerde {
    fn serialize(&self, value: &Value) -> Result<Option<Vec<u8>>, SerdeError> {
        self.codec.check_write(value)?;
        serde_json::to_vec(value)
            .map(Some)
            .map_err(|e| SerdeError::new(format!("JSON encoding failed: {e}")))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Value, SerdeError> {
        let tree: Value = serde_json::from_slice(present(bytes)?)
            .map_err(|e| decode_error(&e, "a JSON value"))?;
        self.codec.check_read(&tree)?;
        Ok(tree)
    }

    fn format(&self) -> String {
        self.codec.format()
    }

    fn reads_format(&self, written: &str) -> Option<Result<(), String>> {
        self.codec.reads_format(written)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
    struct Payment {
        id: String,
        amount: i64,
        currency: String,
    }

    fn payment(amount: i64) -> Payment {
        Payment {
            id: "p-1".to_owned(),
            amount,
            currency: "EUR".to_owned(),
        }
    }

    fn payment_schema() -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "id": {"type": "string", "minLength": 1},
                "amount": {"type": "integer", "minimum": 0},
                "currency": {"$ref": "#/$defs/currency"}
            },
            "required": ["id", "amount", "currency"],
            "$defs": {"currency": {"enum": ["EUR", "USD"]}}
        })
    }

    #[test]
    fn a_derived_struct_round_trips_as_serde_jsons_bytes_with_or_without_a_schema() {
        let plain = JsonSerde::<Payment>::new();
        let checked = JsonSerde::<Payment>::with_schema(payment_schema()).unwrap();
        let expected = serde_json::to_vec(&payment(12)).unwrap();
        for serde in [&plain, &checked] {
            let bytes = serde.serialize(&payment(12)).unwrap();
            // Same bytes, fields in declaration order: adding a schema moves no key.
            assert_eq!(bytes.as_deref(), Some(&expected[..]));
            assert_eq!(serde.deserialize(bytes.as_deref()).unwrap(), payment(12));
        }
        assert_eq!(
            String::from_utf8(expected).unwrap(),
            r#"{"id":"p-1","amount":12,"currency":"EUR"}"#
        );
    }

    #[test]
    fn malformed_json_is_the_records_fault_and_names_the_position() {
        let schema = payment_schema();
        let serdes: [Arc<dyn Serde<Payment>>; 2] = [
            Arc::new(JsonSerde::<Payment>::new()),
            Arc::new(JsonSerde::<Payment>::with_schema(schema.clone()).unwrap()),
        ];
        for serde in &serdes {
            let err = serde
                .deserialize(Some(b"{\"id\": \"p-1\",\n \"amount\": }"))
                .unwrap_err();
            assert!(err.message().starts_with("invalid JSON: "), "{err}");
            assert!(err.message().contains("line 2 column 12"), "{err}");
            assert!(!err.is_transient(), "{err}");
            let err = serde.deserialize(Some(b"")).unwrap_err();
            assert!(err.message().contains("line 1 column 0"), "{err}");
            let err = serde.deserialize(None).unwrap_err();
            assert!(err.message().contains("Nullable"), "{err}");
            assert!(!err.is_transient(), "{err}");
        }
        let generic = GenericJsonSerde::with_schema(schema).unwrap();
        let err = generic.deserialize(Some(b"[1, 2,]")).unwrap_err();
        assert!(err.message().contains("line 1 column 7"), "{err}");
    }

    #[test]
    fn json_that_does_not_fit_the_type_says_what_and_where() {
        // Valid by the schema, but `amount` is an i64 and 1.5 is not one: the schema'd
        // serde still reports where, though it decoded through a tree.
        let lax = json!({"type": "object"});
        let bytes = br#"{"id": "p-1", "amount": 1.5, "currency": "EUR"}"#;
        for serde in [
            JsonSerde::<Payment>::new(),
            JsonSerde::<Payment>::with_schema(lax).unwrap(),
        ] {
            let err = serde.deserialize(Some(bytes)).unwrap_err();
            assert!(err.message().contains("does not fit"), "{err}");
            assert!(err.message().contains("Payment"), "{err}");
            assert!(err.message().contains("line 1 column 27"), "{err}");
            assert!(!err.is_transient(), "{err}");
        }
        let err = JsonSerde::<Payment>::new()
            .deserialize(Some(br#"{"id": "p-1", "amount": 1}"#))
            .unwrap_err();
        assert!(err.message().contains("missing field `currency`"), "{err}");
    }

    #[test]
    fn the_schema_refuses_to_write_an_invalid_record_naming_path_and_rule() {
        let serde = JsonSerde::<Payment>::with_schema(payment_schema()).unwrap();
        let err = serde.serialize(&payment(-5)).unwrap_err();
        assert!(err.message().starts_with("refusing to write"), "{err}");
        assert!(
            err.message()
                .contains("/amount: value is less than the minimum of 0"),
            "{err}"
        );
        assert!(
            err.message()
                .contains("rule `minimum` at /properties/amount/minimum"),
            "{err}"
        );
        assert!(!err.is_transient(), "{err}");
        let mut bad = payment(-5);
        bad.currency = "GBP".to_owned();
        let err = serde.serialize(&bad).unwrap_err();
        assert!(err.message().contains("/amount"), "{err}");
        assert!(err.message().contains("/currency"), "{err}");
        assert!(err.message().contains("rule `enum`"), "{err}");
    }

    #[test]
    fn the_schema_refuses_an_invalid_record_read_naming_path_and_rule() {
        // The bytes decode into Payment; only the schema says no.
        let bytes = br#"{"id": "p-1", "amount": -5, "currency": "EUR"}"#;
        assert!(JsonSerde::<Payment>::new().deserialize(Some(bytes)).is_ok());
        let typed = JsonSerde::<Payment>::with_schema(payment_schema()).unwrap();
        let generic = GenericJsonSerde::with_schema(payment_schema()).unwrap();
        let errors = [
            typed.deserialize(Some(bytes)).unwrap_err(),
            generic.deserialize(Some(bytes)).unwrap_err(),
        ];
        for err in errors {
            assert!(
                err.message().starts_with("a record breaks the JSON Schema"),
                "{err}"
            );
            assert!(err.message().contains("/amount: "), "{err}");
            assert!(err.message().contains("rule `minimum`"), "{err}");
            // Not transient: it goes to the deserialization handler (fail, skip, dead letter)
            // instead of being retried from the last commit.
            assert!(!err.is_transient(), "{err}");
        }
        let err = generic.deserialize(Some(br#"{"id": ""}"#)).unwrap_err();
        assert!(err.message().contains("/id: "), "{err}");
        assert!(err.message().contains("rule `minLength`"), "{err}");
        assert!(err.message().contains("(root): "), "{err}");
        assert!(err.message().contains("rule `required`"), "{err}");
    }

    #[test]
    fn valid_records_pass_the_schema_both_ways() {
        let typed = JsonSerde::<Payment>::with_schema(payment_schema()).unwrap();
        let bytes = typed.serialize(&payment(0)).unwrap();
        assert_eq!(typed.deserialize(bytes.as_deref()).unwrap(), payment(0));
        let generic = GenericJsonSerde::with_schema(payment_schema()).unwrap();
        let value = json!({"id": "p-2", "amount": 7, "currency": "USD", "note": "extra"});
        let bytes = generic.serialize(&value).unwrap();
        assert_eq!(generic.deserialize(bytes.as_deref()).unwrap(), value);
        assert_eq!(typed.schema(), Some(&payment_schema()));
        assert_eq!(JsonSerde::<Payment>::new().schema(), None);
    }

    #[test]
    fn invalid_schemas_and_remote_refs_are_refused_when_built() {
        let err = GenericJsonSerde::with_schema(json!({"type": 5})).unwrap_err();
        let JsonError::InvalidSchema { message } = &err;
        assert!(message.contains("/type"), "{err}");
        // Never fetched: the build fails at once, naming the reference.
        let err = JsonSerde::<Payment>::with_schema(json!({
            "$ref": "https://schemas.example.invalid/payment.json"
        }))
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("https://schemas.example.invalid/payment.json"),
            "{err}"
        );
        assert!(err.to_string().contains("never fetched"), "{err}");
    }

    #[test]
    fn the_format_tells_plain_and_schema_serdes_and_schemas_apart() {
        assert_eq!(JsonSerde::<Payment>::new().format(), "json");
        assert_eq!(GenericJsonSerde::new().format(), "json");
        let typed = JsonSerde::<Payment>::with_schema(payment_schema()).unwrap();
        let generic = GenericJsonSerde::with_schema(payment_schema()).unwrap();
        assert!(
            typed.format().starts_with("json-schema:{"),
            "{}",
            typed.format()
        );
        assert_eq!(typed.format(), generic.format());
        let mut stricter = payment_schema();
        stricter["properties"]["amount"]["minimum"] = json!(1);
        let stricter = GenericJsonSerde::with_schema(stricter).unwrap();
        assert_ne!(stricter.format(), generic.format());
        // Not eddy::serde::JsonSerde's `json:<type>`, which the runtime lets change freely.
        assert!(!typed.format().starts_with("json:"));
    }

    #[test]
    fn reads_format_accepts_json_without_a_schema_and_only_the_same_schema_with_one() {
        let plain = JsonSerde::<Payment>::new();
        let typed = JsonSerde::<Payment>::with_schema(payment_schema()).unwrap();
        let mut other = payment_schema();
        other["required"] = json!(["id"]);
        let other = GenericJsonSerde::with_schema(other).unwrap();

        // A plain serde reads any JSON: its own, a schema'd one's, the framework's.
        for written in [
            "json".to_owned(),
            typed.format(),
            "json:shop::Payment".to_owned(),
        ] {
            assert_eq!(plain.reads_format(&written), Some(Ok(())), "{written}");
        }
        assert_eq!(plain.reads_format("avro:{}"), None);
        assert_eq!(plain.reads_format("utf8"), None);

        // A schema'd one: the same schema (however its keys were ordered), else unknown.
        assert_eq!(typed.reads_format(&typed.format()), Some(Ok(())));
        let reordered: Value = serde_json::from_str(
            r##"{"$defs": {"currency": {"enum": ["EUR", "USD"]}},
                "required": ["id", "amount", "currency"],
                "properties": {
                    "currency": {"$ref": "#/$defs/currency"},
                    "amount": {"minimum": 0, "type": "integer"},
                    "id": {"minLength": 1, "type": "string"}
                },
                "type": "object",
                "$schema": "https://json-schema.org/draft/2020-12/schema"}"##,
        )
        .unwrap();
        let reordered = GenericJsonSerde::with_schema(reordered).unwrap();
        assert_eq!(typed.reads_format(&reordered.format()), Some(Ok(())));
        assert_eq!(typed.reads_format(&other.format()), None);
        assert_eq!(typed.reads_format("json"), None);
        assert_eq!(typed.reads_format("json:shop::Payment"), None);
    }

    #[test]
    fn nullable_wrapping_reads_tombstones() {
        let serde = eddy::serde::Nullable(GenericJsonSerde::with_schema(payment_schema()).unwrap());
        assert_eq!(serde.deserialize(None).unwrap(), None);
        assert_eq!(serde.serialize(&None).unwrap(), None);
        assert_eq!(
            serde.reads_format(&format!("nullable:{}", serde.0.format())),
            Some(Ok(()))
        );
    }
}
