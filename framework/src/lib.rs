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
//! - [`shared`]: what the runtime, the ops server and telemetry share (plan, metrics, status);
//! - [`config`]: layered, validated app configuration ([`ConfigLoader`]);
//! - [`kafka`]: Kafka clients configured for exactly-once, and the component that owns every
//!   transaction call ([`kafka::OutputProducer`]);
//! - [`ops`]: the instance's HTTP server (health, readiness, metrics, state queries,
//!   savepoints);
//! - [`snapshot`]: checkpoints and savepoints in a snapshot store;
//! - [`telemetry`]: log format and OpenTelemetry (OTLP) export;
//! - [`error`]: the recovery action every error carries ([`ErrorAction`]);
//! - [`test_driver`]: running a topology in memory for tests;
//! - [`prelude`]: what an app author types, in one `use`.
//!
//! A topology, checked in memory with the test driver (the same topology runs against Kafka
//! with `App::new(topology, config).run()`):
//!
//! ```
//! use eddy::prelude::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let builder = StreamsBuilder::new();
//! builder
//!     .stream("lines", UnitSerde, StringSerde)
//!     .flat_map_values(|line: String| {
//!         line.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>()
//!     })
//!     .select_key(|_: &(), word: &String| word.clone())
//!     .group_by_key(StringSerde, StringSerde)
//!     .count("counts")
//!     .to_stream()
//!     .to("counts-out", StringSerde, Nullable(I64Serde));
//! let topology = builder.build()?;
//!
//! let mut driver = TopologyTestDriver::new(topology)?;
//! for line in ["a b", "b"] {
//!     driver.pipe_input("lines", &UnitSerde, &StringSerde, &(), &line.to_owned(), 0)?;
//! }
//! let counts: Vec<(String, i64)> = driver
//!     .read_output("counts-out", &StringSerde, &I64Serde)?
//!     .into_iter()
//!     .map(|r| (r.key, r.value))
//!     .collect();
//! assert_eq!(counts, [("a".into(), 1), ("b".into(), 1), ("b".into(), 2)]);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod backoff;
pub mod config;
pub mod dsl;
pub mod error;
pub mod kafka;
pub mod ops;
pub mod prelude;
pub mod processor;
pub mod record;
pub mod runtime;
pub mod serde;
pub mod shared;
pub mod snapshot;
pub mod state;
pub mod task;
pub mod telemetry;
pub mod test_driver;
pub mod topology;
pub mod two_phase;

pub use config::{ConfigLoader, EddyConfig};
pub use dsl::StreamsBuilder;
pub use error::ErrorAction;
pub use processor::{Processor, ProcessorContext};
pub use record::Record;
pub use runtime::App;
pub use test_driver::TopologyTestDriver;
pub use topology::{Topology, TopologyBuilder};
