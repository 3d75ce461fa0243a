//! When each periodic duty of a stream thread last ran, and whether it is due again.

use std::time::{Duration, Instant};

/// A periodic duty of a stream thread's loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Duty {
    /// Committing the open transaction (`processing.commit_interval_ms`).
    Commit,
    /// Asking whether restoring tasks' changelogs are stable.
    StableCheck,
    /// Looking up the committed offsets of tasks that do not know theirs yet.
    StartLookup,
    /// Confirming restored tasks' committed offsets before they run.
    StartConfirm,
    /// Reading the control topic while no savepoint is in progress.
    ControlPoll,
    /// Publishing the thread's status.
    Report,
    /// Logging restore progress.
    ProgressLog,
    /// Taking local checkpoints (`snapshot.checkpoint_interval_ms`).
    Checkpoint,
    /// Checking whether tasks' table inputs are loaded (their other inputs held meanwhile).
    TableLoad,
    /// Checking whether tasks reached the ends of a bounded run.
    BoundedEnd,
    /// Resolving what two-phase sinks left prepared, and measuring its age.
    ExternalResolve,
}

const DUTIES: usize = 11;

impl Duty {
    fn index(self) -> usize {
        self as usize
    }
}

/// When each [`Duty`] last ran; one that never ran (or was [cleared](Self::clear)) is due.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cadence {
    last: [Option<Instant>; DUTIES],
}

impl Cadence {
    /// A cadence where `ran_now` count as just run and every other duty is due.
    pub(crate) fn starting(ran_now: &[Duty]) -> Self {
        let mut cadence = Cadence::default();
        for &duty in ran_now {
            cadence.ran(duty);
        }
        cadence
    }

    /// True when `duty` has not run within `every`.
    pub(crate) fn is_due(&self, duty: Duty, every: Duration) -> bool {
        self.last[duty.index()].is_none_or(|at| at.elapsed() >= every)
    }

    /// True, and notes that `duty` runs now, when it is due.
    pub(crate) fn run_if_due(&mut self, duty: Duty, every: Duration) -> bool {
        let due = self.is_due(duty, every);
        if due {
            self.ran(duty);
        }
        due
    }

    /// Notes that `duty` ran now.
    pub(crate) fn ran(&mut self, duty: Duty) {
        self.last[duty.index()] = Some(Instant::now());
    }

    /// Makes `duty` due at the next check.
    pub(crate) fn clear(&mut self, duty: Duty) {
        self.last[duty.index()] = None;
    }

    /// How long until `duty` is due again (zero when it is due).
    pub(crate) fn until_due(&self, duty: Duty, every: Duration) -> Duration {
        self.last[duty.index()].map_or(Duration::ZERO, |at| every.saturating_sub(at.elapsed()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3_600);

    #[test]
    fn duties_are_due_until_they_run_and_again_once_cleared() {
        let mut cadence = Cadence::starting(&[Duty::Commit]);
        assert!(!cadence.is_due(Duty::Commit, HOUR), "just ran");
        assert!(cadence.is_due(Duty::Report, HOUR), "never ran");
        assert_eq!(cadence.until_due(Duty::Report, HOUR), Duration::ZERO);
        assert!(cadence.until_due(Duty::Commit, HOUR) > Duration::from_secs(3_500));
        assert!(cadence.run_if_due(Duty::Report, HOUR));
        assert!(!cadence.run_if_due(Duty::Report, HOUR), "ran a moment ago");
        assert!(
            cadence.run_if_due(Duty::Report, Duration::ZERO),
            "no interval"
        );
        cadence.clear(Duty::Report);
        assert!(cadence.is_due(Duty::Report, HOUR));
    }
}
