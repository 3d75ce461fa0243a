//! Avro for Eddy apps: serdes for keys, values and state stores in the Confluent wire format
//! (a zero magic byte, the schema's registry id as 4 big-endian bytes, then the Avro binary
//! datum), over a schema registry that serves the Confluent API.
//!
//! [`AvroSerde`] turns Rust types that derive serde's `Serialize` and `Deserialize` into
//! records of a given Avro schema, [`GenericAvroSerde`] works on
//! [`apache_avro::types::Value`] records. Both register their schema under the subject
//! their [`Subject`] strategy names (or look it up when auto-registration is off), write
//! with it, and read any record whose writer schema the registry knows, resolved into their
//! own schema by Avro's rules: an app reads records written by older (or newer) versions of
//! the schema as long as the two are compatible.
//!
//! Errors keep Eddy's distinction: bytes that are not in the wire format, an unknown schema
//! id or a datum that does not decode are the record's fault and go to the app's
//! deserialization handler (fail, skip, dead letter); a registry that cannot be reached is
//! not, and makes the runtime start over from the last commit and try again.
//!
//! The registry client is `schema_registry_converter` (blocking), which caches schemas by
//! id and subject; see `docs/ARCHITECTURE.md` for why.

mod avro_serde;
mod registry;

pub use apache_avro;
pub use avro_serde::{AvroSerde, GenericAvroSerde, Subject};
pub use registry::{Compatibility, Registry, RegistryBuilder, RegistryError};
