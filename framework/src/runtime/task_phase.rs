//! The phases of an active task from assignment to close, as one state machine whose
//! variants carry what only that phase needs.
//!
//! ```text
//!   assigned: stores opened, input paused
//!       │
//!       ▼
//!   Settling ── waits until the member holds every input partition of the task, then
//!       │       looks up their committed offsets until they are stable (a previous owner's
//!       │       last transaction has ended: its offsets and changelog records are final)
//!       │       knows: which inputs' offsets are still unknown
//!       │ settle(changelogs)   once every input's offset is known
//!       ▼
//!   Restoring ─ each changelogged store waits for its changelog to be stable, then
//!       │       replays it to the last stable offset
//!       │       knows: when it settled, each store's restore target and progress
//!       │ run()                once every store is restored
//!       ▼
//!   Running ─── inputs resumed at their starts; a record below one is skipped and the
//!       │       consumer moved up once
//!       │       knows: the offset of its first record
//!       ▼
//!   closed ──── revoked or shut down: committed first, then `ActiveTask::close` (state kept
//!               on disk for reuse); lost or reset: pending changes dropped. Either way, in
//!               any phase, the task leaves the thread's map in the step that closes it.
//! ```
//!
//! What stays outside the phase, and why:
//! - Closed is not a variant: no code ever holds a closed task (closing consumes it), so a
//!   variant would be a state nothing can observe.
//! - Per input, on `TaskInput`: the committed offset it resumed at (`start`, written while
//!   settling, then read while restoring ends, while running as the floor of the below-start
//!   guard, and by table loads, merges and bounded runs), the guard's memory (`taken_to`,
//!   `seek_requested`: only changed while running, but a pair that belongs with the input it
//!   guards, not a per-input vector in `Running`), and the offsets to commit.
//! - On `ActiveTask`: where its state came from and the replays planned (the status shows
//!   them for as long as the task lives), and when it was created.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::shared::TaskState;

/// Restore progress of one changelogged store of a restoring task.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Where an active task is in its life, with what that phase knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TaskPhase {
    /// Waiting for every input partition, then looking up the committed input offsets
    /// until they are stable.
    Settling {
        /// The input topics whose committed offset is not known yet.
        unsettled: BTreeSet<String>,
        /// True once a lookup found it unsettled (logged once).
        waiting_noted: bool,
    },
    /// The offsets settled; changelogs are replayed before input resumes.
    Restoring {
        /// When the offsets settled: bounds the wait for stable changelogs.
        since: Instant,
        /// One per changelogged store.
        restores: Vec<StoreRestore>,
    },
    /// Processing input.
    Running {
        /// Offset of the first record it processed (logged once: where its owner resumed).
        first: Option<i64>,
    },
}

impl TaskPhase {
    /// A newly assigned task's phase, with the topics of its inputs.
    pub(crate) fn assigned<'a>(inputs: impl IntoIterator<Item = &'a str>) -> Self {
        TaskPhase::Settling {
            unsettled: inputs.into_iter().map(str::to_owned).collect(),
            waiting_noted: false,
        }
    }

    /// True while the committed offset of input `topic` is still to be looked up.
    pub(crate) fn awaits_offset(&self, topic: &str) -> bool {
        matches!(self, TaskPhase::Settling { unsettled, .. } if unsettled.contains(topic))
    }

    /// Notes that the committed offset of input `topic` is known.
    pub(crate) fn offset_known(&mut self, topic: &str) {
        if let TaskPhase::Settling { unsettled, .. } = self {
            unsettled.remove(topic);
        }
    }

    /// True while settling with every input's committed offset known: ready to settle.
    pub(crate) fn offsets_known(&self) -> bool {
        matches!(self, TaskPhase::Settling { unsettled, .. } if unsettled.is_empty())
    }

    /// Settling → Restoring, once every input's offset is known, with the task's
    /// changelogged stores (`(store, changelog topic)`) to restore. False (and no change)
    /// otherwise.
    pub(crate) fn settle(&mut self, changelogs: Vec<(String, String)>) -> bool {
        if !self.offsets_known() {
            return false;
        }
        let restores = changelogs
            .into_iter()
            .map(|(store, topic)| StoreRestore {
                store,
                topic,
                target: None,
                done: false,
            })
            .collect();
        *self = TaskPhase::Restoring {
            since: Instant::now(),
            restores,
        };
        true
    }

    /// Restoring → Running, once every store is restored. False (and no change) otherwise.
    pub(crate) fn run(&mut self) -> bool {
        if !self.restored() {
            return false;
        }
        *self = TaskPhase::Running { first: None };
        true
    }

    /// True the first time a settling task finds its offset unsettled.
    pub(crate) fn note_waiting(&mut self) -> bool {
        match self {
            TaskPhase::Settling { waiting_noted, .. } if !*waiting_noted => {
                *waiting_noted = true;
                true
            }
            _ => false,
        }
    }

    /// True once the committed offset is known (restoring or running).
    pub(crate) fn is_settled(&self) -> bool {
        !matches!(self, TaskPhase::Settling { .. })
    }

    /// True while the task processes input.
    pub(crate) fn is_running(&self) -> bool {
        matches!(self, TaskPhase::Running { .. })
    }

    /// True while restoring with every store restored: ready to run.
    pub(crate) fn restored(&self) -> bool {
        matches!(self, TaskPhase::Restoring { restores, .. } if restores.iter().all(|r| r.done))
    }

    /// The restore of each changelogged store, while restoring (none in another phase).
    pub(crate) fn restores(&self) -> &[StoreRestore] {
        match self {
            TaskPhase::Restoring { restores, .. } => restores,
            _ => &[],
        }
    }

    /// The same, to record progress.
    pub(crate) fn restores_mut(&mut self) -> &mut [StoreRestore] {
        match self {
            TaskPhase::Restoring { restores, .. } => restores,
            _ => &mut [],
        }
    }

    /// True the first time a running task processes a record (at `offset`).
    pub(crate) fn note_first(&mut self, offset: i64) -> bool {
        match self {
            TaskPhase::Running { first, .. } if first.is_none() => {
                *first = Some(offset);
                true
            }
            _ => false,
        }
    }

    /// What the instance status shows.
    pub(crate) fn status(&self) -> TaskState {
        match self {
            TaskPhase::Settling { .. } => TaskState::Settling,
            TaskPhase::Restoring { .. } => TaskState::Restoring,
            TaskPhase::Running { .. } => TaskState::Running,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_settles_restores_and_runs_in_that_order() {
        let changelogs = || vec![("counts".to_owned(), "app-counts-changelog".to_owned())];
        let mut phase = TaskPhase::assigned(["left", "right"]);
        assert!(!phase.run(), "cannot run before its offsets settled");
        assert_eq!(phase.status(), TaskState::Settling);
        assert!(phase.note_waiting());
        assert!(!phase.note_waiting(), "noted once");
        assert!(!phase.is_settled());
        assert!(phase.awaits_offset("left"));
        phase.offset_known("left");
        assert!(!phase.awaits_offset("left"));
        assert!(!phase.settle(changelogs()), "an input's offset is unknown");
        phase.offset_known("right");
        assert!(phase.settle(changelogs()));
        assert!(!phase.settle(changelogs()), "settles once");
        assert!(matches!(phase, TaskPhase::Restoring { .. }));
        assert_eq!(phase.status(), TaskState::Restoring);
        assert_eq!(phase.restores().len(), 1);
        assert!(!phase.run(), "cannot run before its stores are restored");
        phase.restores_mut()[0].done = true;
        assert!(phase.run());
        assert!(phase.is_running());
        assert!(phase.restores().is_empty());
        assert_eq!(phase.status(), TaskState::Running);
        assert!(!phase.run(), "runs once");
        assert!(phase.note_first(40));
        assert!(!phase.note_first(41));
    }

    #[test]
    fn a_task_without_changelogs_is_restored_once_settled() {
        let mut phase = TaskPhase::assigned(["in"]);
        assert!(!phase.restored());
        phase.offset_known("in");
        assert!(phase.settle(Vec::new()));
        assert!(phase.restored());
        assert!(phase.run());
    }
}
