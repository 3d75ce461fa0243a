//! When a stream thread that must start over does so: at once after progress, after a growing
//! back-off while it makes none, and not at all once it made none for too long.

use std::time::{Duration, Instant};

/// The shortest and longest pause between two start-overs without progress.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A generation that ran this long made progress even without a commit (an idle app).
const HEALTHY_RUN: Duration = Duration::from_secs(30);

/// What to do after a generation ended and the thread must start over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Restart {
    /// Start the next generation at once: the last one made progress.
    Now,
    /// Wait this long first: the start-overs make no progress.
    After(Duration),
    /// Stop: no progress for this long, at least the restart deadline.
    GiveUp(Duration),
}

/// The back-off state of one stream thread.
#[derive(Debug)]
pub(crate) struct RestartPolicy {
    deadline: Duration,
    backoff: Duration,
    stalled_since: Option<Instant>,
}

impl RestartPolicy {
    /// A policy that gives up after `deadline` without progress.
    pub(crate) fn new(deadline: Duration) -> Self {
        RestartPolicy {
            deadline,
            backoff: FIRST_BACKOFF,
            stalled_since: None,
        }
    }

    /// Decides, at `now`, about a generation that started at `started` and committed or not.
    pub(crate) fn next(&mut self, started: Instant, now: Instant, committed: bool) -> Restart {
        if committed || now.saturating_duration_since(started) >= HEALTHY_RUN {
            self.backoff = FIRST_BACKOFF;
            self.stalled_since = None;
            return Restart::Now;
        }
        let stalled = now.saturating_duration_since(*self.stalled_since.get_or_insert(started));
        if stalled >= self.deadline {
            return Restart::GiveUp(stalled);
        }
        let pause = self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        Restart::After(pause)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_while_stalled_resets_on_progress_and_gives_up_at_the_deadline() {
        let mut policy = RestartPolicy::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(policy.next(t0, at(1), false), Restart::After(FIRST_BACKOFF));
        assert_eq!(
            policy.next(at(1), at(2), false),
            Restart::After(FIRST_BACKOFF * 2)
        );
        assert_eq!(policy.next(at(2), at(3), true), Restart::Now, "a commit");
        assert_eq!(
            policy.next(at(3), at(4), false),
            Restart::After(FIRST_BACKOFF),
            "back-off starts over after progress"
        );
        let mut last = Restart::Now;
        for s in 4..64 {
            last = policy.next(at(s), at(s + 1), false);
        }
        assert_eq!(last, Restart::GiveUp(Duration::from_secs(61)));
        let mut capped = RestartPolicy::new(Duration::from_secs(3_600));
        for s in 0..20 {
            last = capped.next(at(s), at(s), false);
        }
        assert_eq!(last, Restart::After(MAX_BACKOFF));
        assert_eq!(
            capped.next(at(100), at(100) + HEALTHY_RUN, false),
            Restart::Now,
            "a long run without commits is an idle app, not a stall"
        );
    }
}
