//! The phases of an active task from assignment to close, as one state machine.
//!
//! ```text
//!   assigned: stores opened, input paused
//!       │
//!       ▼
//!   Settling ── committed input offset looked up until it is stable (a previous owner's
//!       │       last transaction has ended: its offsets and changelog records are final)
//!       │ settle(start)
//!       ▼
//!   Restoring ─ each changelogged store waits for its changelog to be stable, then
//!       │       replays it to the last stable offset
//!       │ run()
//!       ▼
//!   Running ─── input resumed at `start`; a record below it is skipped and the consumer
//!       │       moved up once
//!       ▼
//!   closed ──── revoked: committed first, state kept on disk for reuse;
//!               lost or reset: pending changes dropped (the task is removed, in any phase)
//! ```

use std::time::Instant;

use crate::shared::TaskState;

/// Where an active task is in its life, with what that phase knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TaskPhase {
    /// Looking up the committed input offset until it is stable.
    Settling {
        /// True once a lookup found it unsettled (logged once).
        waiting_noted: bool,
    },
    /// The offset settled; changelogs are replayed before input resumes at `start`.
    Restoring {
        /// The committed input offset (`None`: nothing committed yet).
        start: Option<i64>,
        /// When the offset settled: bounds the wait for stable changelogs.
        since: Instant,
    },
    /// Processing input.
    Running {
        /// The committed input offset the task resumed at.
        start: Option<i64>,
        /// Offset of the first record it processed (logged once: where its owner resumed).
        first: Option<i64>,
        /// True once the consumer was asked to move up to `start`.
        seek_requested: bool,
    },
}

impl TaskPhase {
    /// A newly assigned task's phase.
    pub(crate) fn assigned() -> Self {
        TaskPhase::Settling {
            waiting_noted: false,
        }
    }

    /// Settling → Restoring, resuming at `start` later. False (and no change) in another
    /// phase.
    pub(crate) fn settle(&mut self, start: Option<i64>) -> bool {
        if !matches!(self, TaskPhase::Settling { .. }) {
            return false;
        }
        *self = TaskPhase::Restoring {
            start,
            since: Instant::now(),
        };
        true
    }

    /// Restoring → Running; returns where input resumes (`Some(None)`: nothing committed).
    /// `None` (and no change) in another phase.
    pub(crate) fn run(&mut self) -> Option<Option<i64>> {
        let TaskPhase::Restoring { start, .. } = *self else {
            return None;
        };
        *self = TaskPhase::Running {
            start,
            first: None,
            seek_requested: false,
        };
        Some(start)
    }

    /// True the first time a settling task finds its offset unsettled.
    pub(crate) fn note_waiting(&mut self) -> bool {
        match self {
            TaskPhase::Settling { waiting_noted } if !*waiting_noted => {
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

    /// When the offset settled, while restoring.
    pub(crate) fn restoring_since(&self) -> Option<Instant> {
        match self {
            TaskPhase::Restoring { since, .. } => Some(*since),
            _ => None,
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

    /// For a running task's record at `offset` below its start: the start, and whether the
    /// consumer is still to be moved there (true once). `None` when the record is to be
    /// processed.
    pub(crate) fn below_start(&mut self, offset: i64) -> Option<(i64, bool)> {
        match self {
            TaskPhase::Running {
                start: Some(start),
                seek_requested,
                ..
            } if offset < *start => {
                let seek = !*seek_requested;
                *seek_requested = true;
                Some((*start, seek))
            }
            _ => None,
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
        let mut phase = TaskPhase::assigned();
        assert_eq!(phase.run(), None, "cannot run before its offset settled");
        assert_eq!(phase.status(), TaskState::Settling);
        assert!(phase.note_waiting());
        assert!(!phase.note_waiting(), "noted once");
        assert!(!phase.is_settled());
        assert!(phase.settle(Some(40)));
        assert!(!phase.settle(Some(7)), "settles once");
        assert!(phase.restoring_since().is_some());
        assert_eq!(phase.status(), TaskState::Restoring);
        assert_eq!(phase.run(), Some(Some(40)));
        assert!(phase.is_running());
        assert_eq!(phase.status(), TaskState::Running);
        assert_eq!(phase.run(), None, "runs once");
    }

    #[test]
    fn records_below_the_start_are_skipped_and_the_consumer_moved_once() {
        let mut phase = TaskPhase::assigned();
        phase.settle(Some(40));
        phase.run();
        assert_eq!(phase.below_start(3), Some((40, true)));
        assert_eq!(phase.below_start(4), Some((40, false)));
        assert_eq!(phase.below_start(40), None);
        assert!(phase.note_first(40));
        assert!(!phase.note_first(41));

        let mut fresh = TaskPhase::assigned();
        fresh.settle(None);
        fresh.run();
        assert_eq!(
            fresh.below_start(0),
            None,
            "nothing committed: nothing to skip"
        );
    }
}
