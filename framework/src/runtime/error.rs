//! Why an app stopped or could not start ([`RuntimeError`]) and the recovery each failure
//! gets ([`RuntimeError::action`]), decided here for every error the runtime meets.

use crate::kafka::{KafkaError, ProducerError, TopicAdminError};
use crate::task::{TaskError, TaskId};
use crate::ErrorAction;

/// Why an app stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The topology cannot run against the cluster as it is.
    #[error("cannot run the topology:\n  - {}", .0.join("\n  - "))]
    Plan(Vec<String>),
    /// Creating or inspecting topics failed.
    #[error(transparent)]
    Topics(#[from] TopicAdminError),
    /// A file or directory of the state directory cannot be used.
    #[error("state directory: {what} {path}: {source}")]
    StateDir {
        /// What was being done (`creating`, `reading`, ...).
        what: &'static str,
        /// The file or directory.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Another running instance holds the state directory's lock.
    #[error("state directory {path}: another running instance holds it; give each instance its own `state.dir`")]
    StateDirTaken {
        /// The app's directory in the state directory.
        path: String,
    },
    /// A thread of the instance could not be started.
    #[error("cannot start the {what} thread: {source}")]
    Spawn {
        /// Which thread.
        what: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Signal handling (SIGTERM, SIGINT) could not be set up.
    #[error("cannot set up signal handling: {source}")]
    Signals {
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The consumer may not commit offsets: it is not a member of the group at the moment
    /// (a rebalance or a lost session), or holds a membership the coordinator cannot fence
    /// with (see `kafka::membership`). The transaction aborts and the thread rejoins.
    #[error("the consumer may not commit offsets: {why}")]
    NotInGroup {
        /// What its membership was.
        why: String,
    },
    /// The at-least-once consumer commit of input offsets failed: the outputs are written
    /// but the offsets not, so the thread starts over from the last commit (at-least-once
    /// allows the outputs again).
    #[error("committing offsets failed: {source}")]
    OffsetCommit {
        /// The consumer's error.
        #[source]
        source: KafkaError,
    },
    /// A Kafka client call failed in a way the runtime cannot recover from.
    #[error("{what}: {source}")]
    Kafka {
        /// What was being done.
        what: String,
        /// The client error.
        #[source]
        source: KafkaError,
    },
    /// The producer failed fatally.
    #[error(transparent)]
    Producer(#[from] ProducerError),
    /// A task failed (a processor error, or a bad record under the `fail` handler).
    #[error("task {task}: {source}")]
    Task {
        /// The task.
        task: TaskId,
        /// Its error.
        #[source]
        source: TaskError,
    },
    /// A two-phase sink of a task failed (see [`crate::two_phase`]).
    #[error("task {task}: two-phase sink {source}")]
    Sink {
        /// The task.
        task: TaskId,
        /// The sink's error.
        #[source]
        source: crate::two_phase::SinkError,
    },
    /// A two-phase sink's prepared transaction vanished after its Kafka commit and was not
    /// committed: the rows it held are lost.
    #[error("task {task}: the prepared transaction {commit} of two-phase sink `{sink}` vanished after its Kafka commit and its writes are not committed")]
    SinkCommitLost {
        /// The task.
        task: TaskId,
        /// The sink.
        sink: String,
        /// The commit's global id.
        commit: String,
    },
    /// An input record's processing failed and `errors.processing` is `fail`.
    #[error("task {task}: the record at {topic} [{partition}] offset {offset} failed: {source}")]
    RecordFailed {
        /// The task.
        task: TaskId,
        /// The record's topic.
        topic: String,
        /// Its partition.
        partition: i32,
        /// Its offset.
        offset: i64,
        /// What went wrong.
        #[source]
        source: Box<TaskError>,
    },
    /// A task's stores could not be restored.
    #[error("restoring task {task}: {reason}")]
    Restore {
        /// The task.
        task: TaskId,
        /// What went wrong.
        reason: RestoreFailure,
    },
    /// A savepoint or checkpoint could not be used or written.
    #[error(transparent)]
    Savepoint(#[from] crate::snapshot::SnapshotError),
    /// Logging or telemetry export could not be set up.
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// The ops HTTP server could not start.
    #[error(transparent)]
    Ops(#[from] crate::ops::OpsError),
    /// A stream thread panicked.
    #[error("stream thread {0} panicked")]
    ThreadPanicked(usize),
    /// SIGTERM or SIGINT came while a start-up step was waiting for the cluster; the app
    /// stops without having started (a clean stop, not a failure).
    #[error("stopped while {during}")]
    StoppedStarting {
        /// The step it was retrying.
        during: String,
    },
    /// Code run by a stream thread panicked outside the record handlers; the open transaction
    /// was aborted.
    #[error("panicked: {message}")]
    Panicked {
        /// The panic's message.
        message: String,
    },
    /// Another process runs with this instance's id (a copied state directory, or the same
    /// `application.instance_id` given twice): each one's start fences the other.
    #[error("another process runs with instance id `{instance_id}`: it keeps registering transactional id `{transactional_id}` and fencing this one (a copied state directory, or application.instance_id set twice?); give every instance its own state directory and instance id")]
    DuplicateInstance {
        /// The instance id both use.
        instance_id: String,
        /// The transactional id they contend for.
        transactional_id: String,
    },
    /// A savepoint was applied to the app while this instance ran on an older timeline.
    #[error("savepoint {savepoint} was applied to the app (timeline {epoch}) while this instance ran on timeline {ours}: restart it to join the new timeline; its local state belongs to the old one")]
    TimelineMoved {
        /// The savepoint applied.
        savepoint: String,
        /// The app's timeline now.
        epoch: String,
        /// The timeline this instance ran on.
        ours: String,
    },
    /// A stream thread kept starting over without committing anything.
    #[error("no progress for {after:?} of start-overs; the last: {reason}")]
    Stalled {
        /// Why the last generation ended.
        reason: String,
        /// How long the thread went without a commit.
        after: std::time::Duration,
    },
}

/// Why a task's stores could not be restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreFailure {
    /// A changelog kept a transaction open longer than any transaction may last: a producer
    /// the broker has not aborted.
    #[error("changelog `{topic}` [{partition}] kept an open transaction for {waited:?}")]
    OpenTransaction {
        /// The changelog.
        topic: String,
        /// Its partition.
        partition: i32,
        /// How long the restore waited.
        waited: std::time::Duration,
    },
    /// The state must come from somewhere that is missing (a snapshot store that is not
    /// configured, a savepoint's manifest or its part for the task).
    #[error("its state must come from the {what}, which is missing")]
    Missing {
        /// What is missing.
        what: String,
    },
    /// The topology has no sub-topology of the task's number (a topology that changed while
    /// its tasks kept their names).
    #[error("the topology has no sub-topology {0}")]
    UnknownSubTopology(u32),
}

impl RuntimeError {
    /// What to do about it. Kafka errors carry their classification: a transient one (a
    /// broker restarting, a coordinator moving, a topic just created) is worth starting the
    /// stream thread over with back-off, and so is a fencing or abortable one; everything else
    /// (a task's own error, a bad state directory, an incompatible savepoint) stops the app.
    pub fn action(&self) -> ErrorAction {
        match self {
            RuntimeError::Kafka { source, .. } => crate::kafka::classify(source),
            // Creating or describing topics is not transactional: only a transient error
            // (the cluster starting or restarting) is worth another try.
            RuntimeError::Topics(TopicAdminError::Kafka { source, .. })
                if crate::kafka::classify(source) == ErrorAction::Retry =>
            {
                ErrorAction::Retry
            }
            RuntimeError::Producer(e) => e.action,
            RuntimeError::Savepoint(e) => e.action(),
            RuntimeError::Ops(e) => e.action(),
            // Joining the group again gives the consumer a generation to commit with.
            RuntimeError::NotInGroup { .. } => ErrorAction::Rejoin,
            // Whatever the consumer's error: starting over from the last commit is safe.
            RuntimeError::OffsetCommit { .. } => ErrorAction::Rejoin,
            RuntimeError::Task { source, .. } => source.action(),
            RuntimeError::Sink { source, .. } if source.transient => ErrorAction::Retry,
            _ => ErrorAction::Fatal,
        }
    }

    /// True when starting over (a new consumer, producer and tasks from the last commit) may
    /// get past the error.
    pub fn is_recoverable(&self) -> bool {
        self.action() != ErrorAction::Fatal
    }
}
