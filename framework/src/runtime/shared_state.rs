//! What an instance's threads (stream threads, the standby thread, the janitor) share: the
//! topology, configuration, plan, metrics, status, snapshot store, standby registry, the
//! records whose processing failed, and locks.

use std::sync::Arc;

use super::instance::InstanceDir;
use super::timeline::Timeline;
use crate::config::{EddyConfig, RecordErrorHandler};
use crate::shared::{Metrics, Plan, Status};
use crate::snapshot::SnapshotStore;
use crate::topology::Topology;

/// What the app shares with every stream thread.
pub(crate) struct Shared {
    pub topology: Arc<Topology>,
    pub config: Arc<EddyConfig>,
    pub plan: Arc<Plan>,
    pub instance: Arc<InstanceDir>,
    pub metrics: Arc<Metrics>,
    /// The savepoint the app's state descends from, if any.
    pub timeline: Arc<Timeline>,
    /// The snapshot store for checkpoints (`snapshot.dir`).
    pub snapshots: Option<Arc<dyn SnapshotStore>>,
    /// What the threads own and how far they got, for the ops server.
    pub status: Arc<Status>,
    /// Standby copies of other instances' tasks, kept by the standby thread.
    pub standbys: super::standbys::Standbys,
    /// Fingerprint of the topology's description.
    pub fingerprint: String,
    /// The block cache and write-buffer budget every RocksDB store of the instance shares.
    pub rocks: crate::state::RocksMemory,
    /// Input records whose processing failed, by `(topic, partition, offset)`, with the
    /// error and where they go: the transaction that held them was aborted, and they are
    /// skipped or dead-lettered when they come again. Shared by the threads, since the task
    /// may come back on another one.
    pub poisoned: std::sync::Mutex<std::collections::HashMap<(String, i32, i64), Poisoned>>,
    /// Held while a task's stores are opened (and its directory perhaps replaced).
    pub task_locks: super::task_base::TaskLocks,
    /// The bounded run this instance takes part in (`processing.mode = bounded`).
    pub bounded: Option<Arc<super::bounded::BoundedRun>>,
}

/// Where a record goes that its handler does not stop on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Diversion {
    /// Nowhere: it is counted and skipped.
    Skip,
    /// To this dead-letter topic, in the open transaction.
    DeadLetter(String),
}

impl Diversion {
    /// The diversion `handler` asks for; `None` when it stops the app.
    pub(crate) fn of(handler: &RecordErrorHandler) -> Option<Diversion> {
        match handler {
            RecordErrorHandler::Fail => None,
            RecordErrorHandler::Skip => Some(Diversion::Skip),
            RecordErrorHandler::DeadLetter(topic) => Some(Diversion::DeadLetter(topic.clone())),
        }
    }
}

/// A record whose processing failed: the error, and where the record goes when it comes
/// again after the abort.
#[derive(Debug, Clone)]
pub(crate) struct Poisoned {
    /// The error, as text (headers of a dead-lettered record carry it).
    pub error: String,
    /// Where the record goes.
    pub diversion: Diversion,
}
