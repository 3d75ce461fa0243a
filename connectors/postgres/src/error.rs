//! The crate's errors, and which PostgreSQL failures are worth another try.

use postgres::error::SqlState;

/// Setting up or running a PostgreSQL sink failed.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    /// The table definition is unusable.
    #[error("table `{table}`: {reason}")]
    Table {
        /// The table.
        table: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A sink's settings are unusable.
    #[error("sink `{sink}`: {reason}")]
    Config {
        /// The sink.
        sink: String,
        /// What is wrong.
        reason: String,
    },
    /// PostgreSQL refused or failed a call.
    #[error("sink `{sink}`: {what}: {source}")]
    Database {
        /// The sink.
        sink: String,
        /// What the sink was doing.
        what: String,
        /// PostgreSQL's error.
        #[source]
        source: postgres::Error,
    },
    /// Kafka refused or failed a call (the topic sink's consumer).
    #[error("sink `{sink}`: {what}: {source}")]
    Kafka {
        /// The sink.
        sink: String,
        /// What the sink was doing.
        what: String,
        /// The client's error (boxed: it is large).
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// Another owner took the partition over in PostgreSQL (a higher generation): this one's
    /// writes are refused.
    #[error(
        "sink `{sink}`: {topic} [{partition}] is owned by generation {current} now, not {mine}"
    )]
    Fenced {
        /// The sink.
        sink: String,
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// This owner's generation.
        mine: i64,
        /// The generation PostgreSQL holds.
        current: i64,
    },
    /// A record could not be turned into a change of the table.
    #[error("sink `{sink}`: the record at {topic} [{partition}] offset {offset}: {reason}")]
    Record {
        /// The sink.
        sink: String,
        /// Where the record came from.
        topic: String,
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
        /// What was wrong.
        reason: String,
    },
}

impl PostgresError {
    /// True when trying again (reconnecting, starting over) can succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            PostgresError::Database { source, .. } => is_transient(source),
            PostgresError::Kafka { .. } | PostgresError::Fenced { .. } => true,
            _ => false,
        }
    }
}

/// True for failures of the connection or of contention, not of the statement or the data:
/// a session that broke or could not open (no SQLSTATE, an I/O cause), connection exceptions
/// (08), serialization failures and deadlocks (40), lock and resource limits (55P03, 53),
/// cancellation and shutdown (57). A value that does not fit its column is not transient.
pub(crate) fn is_transient(e: &postgres::Error) -> bool {
    let Some(code) = e.code() else {
        let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
        return e.is_closed() || io;
    };
    let class = &code.code()[..2];
    matches!(class, "08" | "40" | "53" | "57") || *code == SqlState::LOCK_NOT_AVAILABLE
}

/// `e` with its causes ("error serializing parameter 2: out of range integral type
/// conversion attempted").
pub(crate) fn describe(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// True when `e` says no prepared transaction has the id given.
pub(crate) fn is_unknown_prepared(e: &postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNDEFINED_OBJECT)
}
