//! Tasks: one sub-topology instantiated for one input partition, with its stores.

pub(crate) mod context;
mod graph;

use std::fmt;

pub(crate) use context::OperatorCounts;
pub(crate) use graph::TaskGraph;

use crate::processor::ProcessError;
use crate::serde::SerdeError;
use crate::state::StateError;
use crate::ErrorAction;

/// Identifies a task: sub-topology and input partition (written `subtopology_partition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId {
    /// The sub-topology.
    pub sub_topology: u32,
    /// The input partition.
    pub partition: i32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.sub_topology, self.partition)
    }
}

/// A task could not process a record.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// An input record's key or value could not be decoded.
    #[error("cannot deserialize the {part} of the record at {topic} [{partition}] offset {offset}: {source}")]
    Deserialization {
        /// Source topic.
        topic: String,
        /// Source partition.
        partition: i32,
        /// Offset of the record.
        offset: i64,
        /// `key` or `value`.
        part: &'static str,
        /// What was wrong.
        #[source]
        source: SerdeError,
    },
    /// An input record's event time is negative: its Kafka timestamp is missing or invalid,
    /// or the source's timestamp extractor made it so.
    #[error("the record at {topic} [{partition}] offset {offset} has no valid event time (timestamp {timestamp}; event times must be 0 or more)")]
    InvalidTimestamp {
        /// Source topic.
        topic: String,
        /// Source partition.
        partition: i32,
        /// Offset of the record.
        offset: i64,
        /// The negative timestamp.
        timestamp: i64,
    },
    /// A processor failed.
    #[error("processor `{node}` failed: {source}")]
    Process {
        /// The processor.
        node: String,
        /// Its error.
        #[source]
        source: ProcessError,
    },
    /// A sink could not encode a record.
    #[error("sink `{node}` cannot serialize a record for topic `{topic}`: {source}")]
    Serialization {
        /// The sink.
        node: String,
        /// Its topic.
        topic: String,
        /// What was wrong.
        #[source]
        source: SerdeError,
    },
    /// A state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// A record came from a topic the task does not read.
    #[error("task has no source for topic `{0}`")]
    UnknownTopic(String),
    /// User code (a processor, a DSL closure, a serde) panicked.
    #[error("processor `{node}` panicked: {message}")]
    Panicked {
        /// The processor that was running.
        node: String,
        /// The panic's message.
        message: String,
    },
}

/// The message a panic carried (`panic!` with a literal or a formatted string), or a note that
/// it carried something else.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

impl TaskError {
    /// What the runtime does about it: a transient serde failure (a schema registry out of
    /// reach) starts over from the last commit; other deserialization errors go to the app's
    /// handler first, errors and panics of processing a record to the processing-error
    /// handler; everything else stops the app, since reprocessing would fail the same way.
    pub fn action(&self) -> ErrorAction {
        match self {
            TaskError::Deserialization { source, .. } | TaskError::Serialization { source, .. }
                if source.is_transient() =>
            {
                ErrorAction::Retry
            }
            _ => ErrorAction::Fatal,
        }
    }

    /// True when the error is the input record's own doing (a processor's error or panic, an
    /// output that cannot be encoded), so the processing-error handler may skip or
    /// dead-letter that record; false for the store and the runtime's failures.
    pub fn is_processing_error(&self) -> bool {
        matches!(
            self,
            TaskError::Process { .. }
                | TaskError::Serialization { .. }
                | TaskError::Panicked { .. }
        )
    }
}
