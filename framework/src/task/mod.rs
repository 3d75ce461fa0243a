//! Tasks: one sub-topology instantiated for one input partition, with its stores.

pub(crate) mod context;
mod graph;

use std::fmt;

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

/// Life cycle of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Created, stores opened, not yet restored.
    Created,
    /// Replaying changelogs into the stores.
    Restoring,
    /// Processing input.
    Running,
    /// Closed; its local state stays on disk for reuse.
    Closed,
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
}

impl TaskError {
    /// What the runtime does about it: deserialization errors go to the app's handler
    /// first; everything else stops the app, since reprocessing would fail the same way.
    pub fn action(&self) -> ErrorAction {
        ErrorAction::Fatal
    }
}
