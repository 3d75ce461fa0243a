//! Serdes that write Avro in the Confluent wire format with a registered schema and read
//! any registered writer schema into their own.

use std::marker::PhantomData;

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::types::Value;
use apache_avro::Schema;
use eddy::serde::{Serde, SerdeError};
use schema_registry_converter::blocking::avro::{AvroDecoder, AvroEncoder};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{
    SchemaType, SubjectNameStrategy, SuppliedSchema,
};

use crate::Registry;

/// Which registry subject a serde's schema belongs to (Confluent's subject name strategies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// `<topic>-key` or `<topic>-value`: one schema lineage per topic and part (the default
    /// of Kafka clients). For a store, name its changelog topic
    /// (`<application.id>-<store>-changelog`).
    Topic {
        /// The topic.
        topic: String,
        /// True for the key's subject.
        key: bool,
    },
    /// The record's full name: one lineage per record type, whatever the topic.
    Record,
    /// `<topic>-<record full name>`: several record types in one topic.
    TopicRecord {
        /// The topic.
        topic: String,
    },
}

impl Subject {
    /// The value subject of `topic`.
    pub fn value_of(topic: &str) -> Self {
        Subject::Topic {
            topic: topic.to_owned(),
            key: false,
        }
    }

    /// The key subject of `topic`.
    pub fn key_of(topic: &str) -> Self {
        Subject::Topic {
            topic: topic.to_owned(),
            key: true,
        }
    }
}

/// The part both serdes share: the registry's encoder and decoder, the subject, and the
/// serde's own (reader) schema.
struct Codec {
    registry: Registry,
    encoder: AvroEncoder,
    decoder: AvroDecoder,
    strategy: SubjectNameStrategy,
    subject: String,
    reader: Schema,
    /// `reader` as full JSON (defaults kept).
    json: String,
}

/// The start of the client's message for a registry that answered with an error status.
const STATUS_ERROR: &str = "HTTP request to schema registry failed with status ";

/// Whether a registry error is the registry's trouble rather than the data's. The client marks
/// transport failures and HTTP 502 and 503 retriable, but not the other server errors (500,
/// 504), a request timeout (408), throttling (429) or refused credentials (401, 403): those
/// are no record's fault either, and the client would otherwise remember them (it caches
/// errors it does not call retriable) as if the schema were bad.
fn registry_side(e: &SRCError) -> bool {
    if e.retriable {
        return true;
    }
    let status = e
        .error
        .strip_prefix(STATUS_ERROR)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|code| code.parse::<u16>().ok());
    matches!(status, Some(401 | 403 | 408 | 429 | 500..=599))
}

impl Codec {
    fn new(
        registry: &Registry,
        schema: &str,
        subject: Subject,
        register: bool,
    ) -> Result<Self, SerdeError> {
        let reader = Schema::parse_str(schema)
            .map_err(|e| SerdeError::new(format!("invalid Avro schema: {e}")))?;
        let full_name = match &reader {
            Schema::Record(record) => Some(record.name.fullname(None)),
            _ => None,
        };
        // The full JSON, not the parsing canonical form: that one drops defaults, which
        // decide compatibility.
        let json = serde_json::to_string(&reader)
            .map_err(|e| SerdeError::new(format!("Avro schema as JSON: {e}")))?;
        let supplied = SuppliedSchema::new(full_name.clone(), SchemaType::Avro, json.clone());
        let record_name = || {
            full_name
                .clone()
                .ok_or_else(|| SerdeError::new("the record name strategies need a record schema"))
        };
        let (strategy, subject) = match (subject, register) {
            (Subject::Topic { topic, key }, true) => {
                let name = format!("{topic}-{}", if key { "key" } else { "value" });
                (
                    SubjectNameStrategy::TopicNameStrategyWithSchema(topic, key, supplied),
                    name,
                )
            }
            (Subject::Topic { topic, key }, false) => {
                let name = format!("{topic}-{}", if key { "key" } else { "value" });
                (SubjectNameStrategy::TopicNameStrategy(topic, key), name)
            }
            (Subject::Record, true) => (
                SubjectNameStrategy::RecordNameStrategyWithSchema(supplied),
                record_name()?,
            ),
            (Subject::Record, false) => {
                let name = record_name()?;
                (SubjectNameStrategy::RecordNameStrategy(name.clone()), name)
            }
            (Subject::TopicRecord { topic }, true) => {
                let name = format!("{topic}-{}", record_name()?);
                (
                    SubjectNameStrategy::TopicRecordNameStrategyWithSchema(topic, supplied),
                    name,
                )
            }
            (Subject::TopicRecord { topic }, false) => {
                let record = record_name()?;
                let name = format!("{topic}-{record}");
                (
                    SubjectNameStrategy::TopicRecordNameStrategy(topic, record),
                    name,
                )
            }
        };
        Ok(Codec {
            registry: registry.clone(),
            encoder: AvroEncoder::new(registry.settings().clone()),
            decoder: AvroDecoder::new(registry.settings().clone()),
            strategy,
            subject,
            reader,
            json,
        })
    }

    /// A registry error as a serde error: transient when it is the registry's trouble (see
    /// [`registry_side`]), after dropping the failures the client remembered, so that the
    /// next try asks the registry again.
    fn serde_error(&self, context: &str, e: &SRCError) -> SerdeError {
        let message = match &e.cause {
            Some(cause) => format!("{context}: {} ({cause})", e.error),
            None => format!("{context}: {}", e.error),
        };
        if !registry_side(e) {
            return SerdeError::new(message);
        }
        if e.cached {
            self.decoder.remove_errors_from_cache();
            self.encoder.remove_errors_from_cache();
        }
        SerdeError::transient(message)
    }

    fn encoded(&self, result: Result<Vec<u8>, SRCError>) -> Result<Option<Vec<u8>>, SerdeError> {
        result.map(Some).map_err(|e| {
            self.serde_error(&format!("Avro encoding for subject `{}`", self.subject), &e)
        })
    }

    /// Decodes wire-format bytes with their writer schema and resolves the value into the
    /// reader schema.
    fn decode(&self, bytes: Option<&[u8]>) -> Result<Value, SerdeError> {
        let bytes = bytes.ok_or_else(|| {
            SerdeError::new(
                "a null is not an Avro record (wrap the serde in Nullable to accept nulls)",
            )
        })?;
        match bytes {
            [0, _, _, _, _, ..] => {}
            [0, ..] => {
                return Err(SerdeError::new(format!(
                    "{} bytes are too few for the Confluent wire format (a magic byte and a 4-byte schema id first)",
                    bytes.len()
                )))
            }
            [magic, ..] => {
                return Err(SerdeError::new(format!(
                    "not in the Confluent wire format: magic byte {magic:#04x}, expected 0x00"
                )))
            }
            [] => return Err(SerdeError::new("empty bytes are not an Avro record")),
        }
        let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
        let decoded = self
            .decoder
            .decode_with_schema(Some(bytes))
            .map_err(|e| self.serde_error(&format!("Avro record with schema id {id}"), &e))?
            .ok_or_else(|| SerdeError::new("a null is not an Avro record"))?;
        decoded.value.resolve(&self.reader).map_err(|e| {
            SerdeError::new(format!(
                "an Avro record written with schema id {id} does not resolve into the schema of subject `{}`: {e}",
                self.subject
            ))
        })
    }

    fn format(&self) -> String {
        format!("avro:{}", self.json)
    }

    /// Whether data written with the Avro schema of format `written` resolves into this
    /// serde's schema (Avro's resolution rules); `None` for a format that is not Avro.
    fn reads_format(&self, written: &str) -> Option<Result<(), String>> {
        let json = written.strip_prefix("avro:")?;
        let writer = match Schema::parse_str(json) {
            Ok(schema) => schema,
            Err(e) => return Some(Err(format!("the saved Avro schema does not parse: {e}"))),
        };
        Some(
            SchemaCompatibility::can_read(&writer, &self.reader)
                .map(|_| ())
                .map_err(|e| {
                    let version = match self.registry.version_of(&self.subject, json) {
                        Ok(Some(v)) => format!("version {v}"),
                        Ok(None) => "a version not registered".to_owned(),
                        Err(e) => format!("a version the registry could not tell ({e})"),
                    };
                    format!(
                        "data written with {version} of subject `{}` does not resolve into the new schema: {e}",
                        self.subject
                    )
                }),
        )
    }
}

/// Avro for a Rust type that derives serde's `Serialize` and `Deserialize`, written with
/// `schema` (registered under its subject on first use) and read from any registered
/// writer schema that resolves into it.
///
/// ```no_run
/// use eddy_avro::{AvroSerde, Registry, Subject};
///
/// #[derive(serde::Serialize, serde::Deserialize, Clone)]
/// struct Order {
///     id: String,
///     cents: i64,
/// }
///
/// let registry = Registry::builder("http://127.0.0.1:8081").build()?;
/// let schema = r#"{"type": "record", "name": "Order", "namespace": "shop",
///     "fields": [{"name": "id", "type": "string"}, {"name": "cents", "type": "long"}]}"#;
/// let orders: AvroSerde<Order> = AvroSerde::new(&registry, schema, Subject::value_of("orders"))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AvroSerde<T> {
    codec: Codec,
    _type: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for AvroSerde<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroSerde")
            .field("subject", &self.codec.subject)
            .finish_non_exhaustive()
    }
}

impl<T> AvroSerde<T> {
    /// A serde for `schema` under `subject`, registering the schema on first write.
    ///
    /// # Errors
    /// Fails when `schema` is not a valid Avro schema, or a record name strategy is asked
    /// of a schema that is not a record.
    pub fn new(registry: &Registry, schema: &str, subject: Subject) -> Result<Self, SerdeError> {
        Ok(AvroSerde {
            codec: Codec::new(registry, schema, subject, true)?,
            _type: PhantomData,
        })
    }

    /// As [`new`](Self::new), but never registers: writes use the subject's latest
    /// registered schema (for deployments where only a pipeline registers schemas).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn without_registering(
        registry: &Registry,
        schema: &str,
        subject: Subject,
    ) -> Result<Self, SerdeError> {
        Ok(AvroSerde {
            codec: Codec::new(registry, schema, subject, false)?,
            _type: PhantomData,
        })
    }

    /// The registry subject.
    pub fn subject(&self) -> &str {
        &self.codec.subject
    }
}

impl<T> Serde<T> for AvroSerde<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    fn serialize(&self, value: &T) -> Result<Option<Vec<u8>>, SerdeError> {
        self.codec.encoded(
            self.codec
                .encoder
                .encode_struct(value, &self.codec.strategy),
        )
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<T, SerdeError> {
        let value = self.codec.decode(bytes)?;
        apache_avro::from_value::<T>(&value).map_err(|e| {
            SerdeError::new(format!(
                "an Avro record of subject `{}` does not fit {}: {e}",
                self.codec.subject,
                std::any::type_name::<T>()
            ))
        })
    }

    fn format(&self) -> String {
        self.codec.format()
    }

    fn reads_format(&self, written: &str) -> Option<Result<(), String>> {
        self.codec.reads_format(written)
    }
}

/// Avro records as [`apache_avro::types::Value`]s (`Value::Record`), for code that works
/// with schemas it does not know at compile time. Reads resolve into `schema` as
/// [`AvroSerde`] does.
pub struct GenericAvroSerde {
    codec: Codec,
}

impl std::fmt::Debug for GenericAvroSerde {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenericAvroSerde")
            .field("subject", &self.codec.subject)
            .finish_non_exhaustive()
    }
}

impl GenericAvroSerde {
    /// A serde for record schema `schema` under `subject`, registering it on first write.
    ///
    /// # Errors
    /// As [`AvroSerde::new`].
    pub fn new(registry: &Registry, schema: &str, subject: Subject) -> Result<Self, SerdeError> {
        Ok(GenericAvroSerde {
            codec: Codec::new(registry, schema, subject, true)?,
        })
    }

    /// The serde's own schema.
    pub fn schema(&self) -> &Schema {
        &self.codec.reader
    }
}

impl Serde<Value> for GenericAvroSerde {
    fn serialize(&self, value: &Value) -> Result<Option<Vec<u8>>, SerdeError> {
        let Value::Record(fields) = value else {
            return Err(SerdeError::new(format!(
                "GenericAvroSerde for subject `{}` writes records, not {value:?}",
                self.codec.subject
            )));
        };
        let fields = fields
            .iter()
            .map(|(name, v)| (name.as_str(), v.clone()))
            .collect();
        self.codec
            .encoded(self.codec.encoder.encode(fields, &self.codec.strategy))
    }

    fn deserialize(&self, bytes: Option<&[u8]>) -> Result<Value, SerdeError> {
        self.codec.decode(bytes)
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
    use super::*;

    const ORDER: &str = r#"{"type": "record", "name": "Order", "namespace": "shop",
        "fields": [{"name": "id", "type": "string"}]}"#;

    /// A registry address where nothing listens (a port just released).
    fn unreachable() -> Registry {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        Registry::builder(&format!("http://127.0.0.1:{port}"))
            .timeout(std::time::Duration::from_secs(2))
            .build()
            .unwrap()
    }

    #[test]
    fn bytes_outside_the_wire_format_are_the_records_fault_and_say_why() {
        let serde = GenericAvroSerde::new(&unreachable(), ORDER, Subject::value_of("o")).unwrap();
        for (bytes, says) in [
            (Some(&b"{\"id\": 1}"[..]), "magic byte 0x7b, expected 0x00"),
            (Some(&[0, 0, 1][..]), "3 bytes are too few"),
            (Some(&[][..]), "empty bytes"),
            (None, "a null is not an Avro record"),
        ] {
            let err = serde.deserialize(bytes).unwrap_err();
            assert!(err.message().contains(says), "{err}");
            assert!(!err.is_transient(), "{err}");
        }
    }

    #[test]
    fn a_registry_out_of_reach_is_a_transient_failure() {
        let serde = GenericAvroSerde::new(&unreachable(), ORDER, Subject::value_of("o")).unwrap();
        let err = serde
            .deserialize(Some(&[0, 0, 0, 0, 7, 2, b'a']))
            .unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(err.message().contains("schema id 7"), "{err}");
        let record = Value::Record(vec![("id".to_owned(), Value::String("a".to_owned()))]);
        let err = serde.serialize(&record).unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert!(err.message().contains("subject `o-value`"), "{err}");
    }

    #[test]
    fn server_errors_throttling_and_refused_credentials_are_the_registrys_trouble() {
        let status = |text: &str| SRCError::new(&format!("{STATUS_ERROR}{text}"), None, false);
        for text in [
            "500 Internal Server Error",
            "504 Gateway Timeout",
            "429 Too Many Requests",
            "408 Request Timeout",
            "401 Unauthorized",
            "403 Forbidden",
        ] {
            assert!(registry_side(&status(text)), "{text}");
        }
        for text in ["404 Not Found", "409 Conflict", "422 Unprocessable Entity"] {
            assert!(!registry_side(&status(text)), "{text}");
        }
        assert!(registry_side(&SRCError::new(
            "connection refused",
            None,
            true
        )));
        assert!(!registry_side(&SRCError::new(
            "Could not transform bytes using schema",
            None,
            false
        )));
    }

    #[test]
    fn invalid_schemas_and_record_strategies_for_non_records_are_refused() {
        let registry = unreachable();
        assert!(GenericAvroSerde::new(&registry, "{", Subject::Record).is_err());
        let err = AvroSerde::<String>::new(&registry, r#""string""#, Subject::Record).unwrap_err();
        assert!(err.message().contains("record"), "{err}");
        let key = AvroSerde::<String>::new(&registry, r#""string""#, Subject::key_of("t")).unwrap();
        assert_eq!(key.subject(), "t-key");
    }
}
