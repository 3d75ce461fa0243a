//! A task owned by a stream thread: its processor graph, restore progress and input position.

use std::time::Instant;

use super::task_phase::TaskPhase;
use crate::shared::{StateSource, StoreReplay};
use crate::task::{TaskGraph, TaskId};

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
    /// Where it is in its life, with what that phase knows.
    pub phase: TaskPhase,
    /// Next input offset to commit, when records were consumed since the last commit.
    pub next_offset: Option<i64>,
    /// The input offset the group last committed for the task, as far as this thread knows
    /// (the settled start, then each commit's): sent with transactions that carry no input of
    /// the task, so a member that lost the task cannot commit them.
    pub committed_offset: Option<i64>,
    /// Stores still being restored.
    pub restores: Vec<StoreRestore>,
    /// Where its stores' starting state came from.
    pub state_source: StateSource,
    /// Each changelogged store's replay, once planned.
    pub replays: Vec<StoreReplay>,
    /// When the task was created (how long it has been restoring, for progress logs).
    pub created: Instant,
    /// Its span: open from creation to close, entered while it processes a record.
    pub span: tracing::Span,
}

impl ActiveTask {
    /// True when every store is restored.
    pub(crate) fn restored(&self) -> bool {
        self.restores.iter().all(|r| r.done)
    }
}
