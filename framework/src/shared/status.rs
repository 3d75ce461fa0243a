//! What each stream thread owns and how far it got, published for the ops server.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use crate::state::StoreReader;
use crate::task::TaskId;

/// What a task is doing, as the instance status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Looking up its committed input offset until no transaction of a previous owner is
    /// open on it.
    Settling,
    /// Replaying its changelogs.
    Restoring,
    /// Processing input.
    Running,
}

impl TaskState {
    /// Every state, in order.
    pub const ALL: [TaskState; 3] = [
        TaskState::Settling,
        TaskState::Restoring,
        TaskState::Running,
    ];

    /// The state's name (`settling`, `restoring`, `running`), as in the JSON status and
    /// metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Settling => "settling",
            TaskState::Restoring => "restoring",
            TaskState::Running => "running",
        }
    }
}

/// Where a task's stores got the state they held when the task opened them, before its
/// changelogs were replayed on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StateSource {
    /// Nothing: a task without stores, or stores that start empty and replay their whole
    /// changelogs.
    Empty,
    /// This instance's copy on disk from an earlier run or assignment.
    Local,
    /// A standby copy this instance kept (or warmed up) for the task.
    Standby,
    /// The task's latest checkpoint in the snapshot store.
    Checkpoint,
    /// The savepoint the app was restored or forked from.
    Savepoint,
}

impl StateSource {
    /// Every source, in order.
    pub const ALL: [StateSource; 5] = [
        StateSource::Empty,
        StateSource::Local,
        StateSource::Standby,
        StateSource::Checkpoint,
        StateSource::Savepoint,
    ];

    /// The source's name, as in the JSON status and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            StateSource::Empty => "empty",
            StateSource::Local => "local",
            StateSource::Standby => "standby",
            StateSource::Checkpoint => "checkpoint",
            StateSource::Savepoint => "savepoint",
        }
    }
}

/// The replay of one changelogged store when its task opened: from the changelog offset its
/// copy held to the changelog's last stable offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreReplay {
    /// The store.
    pub store: String,
    /// The first changelog offset replayed (the copy held everything below it).
    pub from: i64,
    /// The offset the replay ends at (exclusive).
    pub to: i64,
}

/// One task as its stream thread last reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskStatus {
    /// The task (`<sub-topology>_<partition>`).
    pub task: String,
    /// Its input topics, comma-separated (one for most tasks; several for a join or merge).
    pub topic: String,
    /// Its input partition.
    pub partition: i32,
    /// What it is doing.
    pub state: TaskState,
    /// Changelog records still to replay before the task runs (0 once running).
    pub restore_remaining: i64,
    /// Where its stores' starting state came from.
    pub state_source: StateSource,
    /// Each changelogged store's replay, once planned.
    pub replays: Vec<StoreReplay>,
    /// Input records not yet processed: the last stable offset minus the consumer's position,
    /// which moves past transaction markers (so a caught-up task shows 0, not 1). `None` until
    /// the consumer has fetched the partition once.
    pub lag: Option<i64>,
    /// Memory its RocksDB stores hold; `None` for a task without RocksDB stores.
    pub rocksdb_memory_bytes: Option<u64>,
}

/// One stream thread as it last reported itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ThreadStatus {
    /// True once the thread's consumer received its first assignment of the current group
    /// generation.
    pub assigned: bool,
    /// Its tasks.
    pub tasks: Vec<TaskStatus>,
}

impl ThreadStatus {
    /// True when the thread has its assignment and every task of it runs.
    pub fn ready(&self) -> bool {
        self.assigned && self.tasks.iter().all(|t| t.state == TaskState::Running)
    }
}

/// A standby task this instance keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StandbyStatus {
    /// The task.
    pub task: String,
    /// Changelog records its copy is behind the changelog ends.
    pub lag: i64,
}

#[derive(Default)]
struct Inner {
    standbys: Vec<StandbyStatus>,
    threads: BTreeMap<String, ThreadStatus>,
    readers: BTreeMap<(String, i32), (TaskId, StoreReader)>,
    failure: Option<String>,
}

/// The instance's live status: stream threads, their tasks, and query handles on their stores.
#[derive(Default)]
pub struct Status {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Status").finish_non_exhaustive()
    }
}

impl Status {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut inner)
    }

    /// Replaces what thread `thread` reports.
    pub(crate) fn publish(&self, thread: &str, status: ThreadStatus) {
        self.with(|inner| inner.threads.insert(thread.to_owned(), status));
    }

    /// Registers the stores of a task that started running.
    pub(crate) fn add_readers(&self, task: TaskId, readers: Vec<StoreReader>) {
        self.with(|inner| {
            for reader in readers {
                inner
                    .readers
                    .insert((reader.store().to_owned(), task.partition), (task, reader));
            }
        });
    }

    /// Forgets the stores of tasks that closed.
    pub(crate) fn remove_readers(&self, tasks: &[TaskId]) {
        self.with(|inner| inner.readers.retain(|_, (task, _)| !tasks.contains(task)));
    }

    /// Replaces the standby report.
    pub(crate) fn set_standbys(&self, standbys: Vec<StandbyStatus>) {
        self.with(|inner| inner.standbys = standbys);
    }

    /// The standby tasks this instance keeps, as last reported.
    pub fn standbys(&self) -> Vec<StandbyStatus> {
        self.with(|inner| inner.standbys.clone())
    }

    /// Records that a stream thread failed: the instance is no longer healthy.
    pub(crate) fn fail(&self, reason: String) {
        self.with(|inner| {
            inner.failure.get_or_insert(reason);
        });
    }

    /// Why the instance is unhealthy, if it is.
    pub fn failure(&self) -> Option<String> {
        self.with(|inner| inner.failure.clone())
    }

    /// Every stream thread's last report.
    pub fn threads(&self) -> BTreeMap<String, ThreadStatus> {
        self.with(|inner| inner.threads.clone())
    }

    /// True when every stream thread has its assignment and all its tasks run.
    pub fn ready(&self, threads: usize) -> bool {
        self.with(|inner| {
            inner.failure.is_none()
                && inner.threads.len() == threads
                && inner.threads.values().all(ThreadStatus::ready)
        })
    }

    /// A read handle on `store` for input partition `partition`, when a running task of this
    /// instance holds it.
    pub fn reader(&self, store: &str, partition: i32) -> Option<StoreReader> {
        self.with(|inner| {
            inner
                .readers
                .get(&(store.to_owned(), partition))
                .map(|(_, r)| r.clone())
        })
    }
}
