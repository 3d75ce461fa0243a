//! Eddy: Kafka-native, exactly-once stream processing in an ordinary binary.
//!
//! An Eddy app reads Kafka topics, processes records through a topology of processors with
//! keyed state in RocksDB, and commits input offsets, output records and state changes
//! atomically through Kafka transactions.
//!
//! This crate's modules:
//! - [`topology`], [`processor`], [`dsl`]: describing the processing as a graph;
//! - [`serde`], [`record`]: the data passing through it;
//! - [`state`]: keyed state stores with transactional writes;
//! - [`task`]: a sub-topology instantiated for one partition;
//! - [`runtime`]: running a topology as one instance of an app ([`App`]);
//! - [`config`]: layered, validated app configuration ([`ConfigLoader`]);
//! - [`kafka`]: Kafka clients configured for exactly-once, and the component that owns every
//!   transaction call ([`kafka::OutputProducer`]);
//! - [`ops`]: the instance's HTTP server (health, readiness, metrics, state queries,
//!   savepoints);
//! - [`snapshot`]: checkpoints and savepoints in a snapshot store;
//! - [`telemetry`]: log format and OpenTelemetry (OTLP) export;
//! - [`error`]: the recovery action every error carries ([`ErrorAction`]);
//! - [`test_driver`]: running a topology in memory for tests.

pub mod config;
pub mod dsl;
pub mod error;
pub mod kafka;
pub mod ops;
pub mod processor;
pub mod record;
pub mod runtime;
pub mod serde;
pub mod snapshot;
pub mod state;
pub mod task;
pub mod telemetry;
pub mod test_driver;
pub mod topology;

pub use config::{ConfigLoader, EddyConfig};
pub use error::ErrorAction;
pub use kafka::{KafkaError, KafkaSettings, OutputProducer};
pub use runtime::App;
