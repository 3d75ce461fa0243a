//! Exactly-once PostgreSQL sinks for Eddy apps.
//!
//! Two ways to get every record's row into PostgreSQL exactly once:
//!
//! - [`PostgresSink`], inside a topology: the rows of one commit are written in one PostgreSQL
//!   transaction, PREPAREd before the task's Kafka transaction commits and COMMIT PREPAREd
//!   after it (two-phase commit, driven by the runtime through [`eddy::two_phase`]). A crash
//!   at any point leaves a prepared transaction whose fate the committed Kafka offsets
//!   decide; the task's next owner commits or rolls it back. Needs
//!   `max_prepared_transactions` > 0 on the server.
//! - [`TopicSink`], a consumer of an output topic (read_committed) with no prepared
//!   transactions: rows and the partition's next offset are written in one transaction, and
//!   a generation number per partition, raised by each new owner, refuses an older owner's
//!   writes.
//!
//! Both write [append or upsert](Table) tables from rows of [`SqlValue`]s.
//!
//! ```no_run
//! use eddy::prelude::*;
//! use eddy_postgres::{Change, PostgresSink, PostgresStreamExt, Table};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let builder = StreamsBuilder::new();
//! let totals = Table::upsert("totals", &["customer", "total"], &["customer"])?;
//! let sink = PostgresSink::new("totals", "postgres://eddy@127.0.0.1:5433/postgres", totals,
//!     |customer: &String, total: &i64| Some(Change::Row(vec![customer.as_str().into(), (*total).into()])))?;
//! builder
//!     .stream("totals-topic", StringSerde, I64Serde)
//!     .to_postgres(&sink);
//! # Ok(())
//! # }
//! ```

mod connect;
mod error;
mod table;
mod topic_sink;
mod two_phase_sink;
mod value;

pub use connect::Tls;
pub use error::PostgresError;
pub use table::{Change, Table};
pub use topic_sink::{TopicSink, TopicSinkReport};
pub use two_phase_sink::{PostgresSink, PostgresSinkProcessor, RowMapper, COMMITS_TABLE};
pub use value::SqlValue;

use eddy::dsl::KStream;
use eddy::processor::Data;

/// Adds a [`PostgresSink`] to a stream.
pub trait PostgresStreamExt<K, V> {
    /// Writes every record of the stream through `sink`, exactly once under exactly-once
    /// processing. The sink's name names the topology node.
    fn to_postgres(&self, sink: &PostgresSink<K, V>);
}

impl<K: Data, V: Data> PostgresStreamExt<K, V> for KStream<K, V> {
    fn to_postgres(&self, sink: &PostgresSink<K, V>) {
        let name = sink.name().to_owned();
        let sink = sink.clone();
        let _ = self.process(&name, move || sink.processor(), &[]);
    }
}
