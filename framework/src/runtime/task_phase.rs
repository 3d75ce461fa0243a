//! The phases of an active task from assignment to close, as one state machine.
//!
//! ```text
//!   assigned: stores opened, input paused
//!       │
//!       ▼
//!   Settling ── waits until the member holds every input partition of the task, then
//!       │       looks up their committed offsets until they are stable (a previous owner's
//!       │       last transaction has ended: its offsets and changelog records are final)
//!       │ settle()
//!       ▼
//!   Restoring ─ each changelogged store waits for its changelog to be stable, then
//!       │       replays it to the last stable offset
//!       │ run()
//!       ▼
//!   Running ─── inputs resumed at their starts; a record below one is skipped and the
//!       │       consumer moved up once
//!       ▼
//!   closed ──── revoked: committed first, state kept on disk for reuse;
//!               lost or reset: pending changes dropped (the task is removed, in any phase)
//! ```

use std::time::Instant;

use crate::shared::TaskState;

/// Where an active task is in its life, with what that phase knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TaskPhase {
    /// Waiting for every input partition, then looking up the committed input offsets
    /// until they are stable.
    Settling {
        /// True once a lookup found it unsettled (logged once).
        waiting_noted: bool,
    },
    /// The offsets settled; changelogs are replayed before input resumes.
    Restoring {
        /// When the offsets settled: bounds the wait for stable changelogs.
        since: Instant,
    },
    /// Processing input.
    Running {
        /// Offset of the first record it processed (logged once: where its owner resumed).
        first: Option<i64>,
    },
}

impl TaskPhase {
    /// A newly assigned task's phase.
    pub(crate) fn assigned() -> Self {
        TaskPhase::Settling {
            waiting_noted: false,
        }
    }

    /// Settling → Restoring. False (and no change) in another phase.
    pub(crate) fn settle(&mut self) -> bool {
        if !matches!(self, TaskPhase::Settling { .. }) {
            return false;
        }
        *self = TaskPhase::Restoring {
            since: Instant::now(),
        };
        true
    }

    /// Restoring → Running. False (and no change) in another phase.
    pub(crate) fn run(&mut self) -> bool {
        if !matches!(self, TaskPhase::Restoring { .. }) {
            return false;
        }
        *self = TaskPhase::Running { first: None };
        true
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
            TaskPhase::Restoring { since } => Some(*since),
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
        assert!(!phase.run(), "cannot run before its offsets settled");
        assert_eq!(phase.status(), TaskState::Settling);
        assert!(phase.note_waiting());
        assert!(!phase.note_waiting(), "noted once");
        assert!(!phase.is_settled());
        assert!(phase.settle());
        assert!(!phase.settle(), "settles once");
        assert!(phase.restoring_since().is_some());
        assert_eq!(phase.status(), TaskState::Restoring);
        assert!(phase.run());
        assert!(phase.is_running());
        assert_eq!(phase.status(), TaskState::Running);
        assert!(!phase.run(), "runs once");
        assert!(phase.note_first(40));
        assert!(!phase.note_first(41));
    }
}
