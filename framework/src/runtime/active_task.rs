//! A task owned by a stream thread: its processor graph, restore progress and input position.

use std::time::Instant;

use crate::task::{TaskGraph, TaskId, TaskState};

/// Restore progress of one changelogged store of a task.
#[derive(Debug, Clone)]
pub(crate) struct StoreRestore {
    /// The store.
    pub store: String,
    /// Its changelog topic (the partition is the task's).
    pub topic: String,
    /// Offset to read up to (the changelog's last stable offset once no transaction is
    /// open on it); `None` until then.
    pub target: Option<i64>,
    /// True once the store holds everything below `target`.
    pub done: bool,
}

/// A task owned by this stream thread.
pub(crate) struct ActiveTask {
    /// The task.
    pub id: TaskId,
    /// Its source topic (resolved).
    pub topic: String,
    /// The same, shared by the origins of the records it sends.
    pub origin_topic: std::sync::Arc<str>,
    /// The instantiated processors and stores.
    pub graph: TaskGraph,
    /// Where it is in its life cycle.
    pub state: TaskState,
    /// Next input offset to commit, when records were consumed since the last commit.
    pub next_offset: Option<i64>,
    /// Stores still being restored.
    pub restores: Vec<StoreRestore>,
    /// When the task was created (how long it has been restoring, for progress logs).
    pub created: Instant,
    /// When its committed offset settled and it began waiting for stable changelogs, to
    /// bound that wait.
    pub settled: Option<Instant>,
    /// Offset of the first input record it processed (logged once: where its owner resumed).
    pub first_offset: Option<i64>,
    /// The committed input offset when the task started (`None`: nothing committed yet).
    pub start_offset: Option<i64>,
    /// The input offset the group last committed for the task, as far as this thread knows
    /// (`start_offset`, then each commit's): sent with transactions that carry no input of
    /// the task, so a member that lost the task cannot commit them.
    pub committed_offset: Option<i64>,
    /// True once `start_offset` was looked up.
    pub start_resolved: bool,
    /// True once a lookup found the committed offset unsettled (logged once).
    pub start_waiting: bool,
    /// True once the consumer was asked to move up to `start_offset`.
    pub seek_requested: bool,
    /// Its span: open from creation to close, entered while it processes a record.
    pub span: tracing::Span,
}

impl ActiveTask {
    /// True when every store is restored.
    pub(crate) fn restored(&self) -> bool {
        self.restores.iter().all(|r| r.done)
    }
}
