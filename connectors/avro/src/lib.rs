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
//!
//! # Retries
//!
//! Each registry call has a timeout ([`RegistryBuilder::timeout`]) and is made once: the
//! client does not retry. A call that fails for the registry's sake (unreachable, timed out,
//! a server error, throttled, credentials refused) fails the serde call with a
//! [transient](eddy::serde::SerdeError::transient) error, and the retry is the runtime's:
//! the stream thread aborts its transaction and starts over from its last commit, backing
//! off from 100 ms to 10 s, until `processing.restart_deadline_ms` passes without progress
//! and the instance stops. A retry loop inside the serde would hold the thread's open
//! transaction and keep it from polling for as long as the loop ran, and add a second
//! policy with its own bounds beside the one every other recoverable failure follows; the
//! start-over is already bounded, counted (`eddy_thread_restarts_total`) and cheap here, as
//! the serdes call the registry only on a schema's first use. Both calls it repeats are safe
//! to repeat: a lookup by id reads, and registering a schema the subject already has
//! returns its id.

mod avro_serde;
mod registry;

pub use apache_avro;
pub use avro_serde::{AvroSerde, GenericAvroSerde, Subject};
pub use registry::{Compatibility, Registry, RegistryBuilder, RegistryError};
