//! Waiting between attempts: the one place the framework pauses a thread (clippy refuses
//! `thread::sleep` and `park_timeout` everywhere else in the crate).
//!
//! A retry loop takes a [`Backoff`] policy, starts it with a time budget and asks its
//! [`Attempts`] whether another wait fits before the deadline; a loop that waits for a
//! condition rather than retrying a failure uses [`poll_until`]; a loop that idles between
//! duties uses [`pause_unless`], which a shutdown flag cuts short, or [`idle`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How a retried step waits between its attempts: from `first`, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    first: Duration,
    max: Duration,
}

impl Backoff {
    /// The same wait between every two attempts.
    pub(crate) const fn fixed(interval: Duration) -> Self {
        Backoff {
            first: interval,
            max: interval,
        }
    }

    /// Waits from `first`, doubling after each attempt up to `max`.
    pub(crate) const fn exponential(first: Duration, max: Duration) -> Self {
        Backoff { first, max }
    }

    /// Starts a retry loop that may wait until `budget` from now has passed.
    pub(crate) fn start(self, budget: Duration) -> Attempts {
        Attempts {
            policy: self,
            next: self.first,
            deadline: deadline_after(budget),
        }
    }
}

/// One retry loop under way: the next wait and the deadline no wait may cross.
#[derive(Debug, Clone)]
pub(crate) struct Attempts {
    policy: Backoff,
    next: Duration,
    deadline: Instant,
}

impl Attempts {
    /// The wait before the next attempt, for the log line that announces it.
    pub(crate) fn next_wait(&self) -> Duration {
        self.next
    }

    /// Whether the deadline has passed.
    pub(crate) fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// As [`wait`](Self::wait), but also false when `stop` is set, before the wait or
    /// during it (then at once).
    pub(crate) fn wait_unless(&mut self, stop: &AtomicBool) -> bool {
        !stop.load(Ordering::Relaxed) && self.wait_with(|pause| !pause_unless(stop, pause))
    }

    /// Waits before the next attempt and returns true, or returns false at once when the
    /// wait would end past the deadline (the caller gives up with its last error).
    pub(crate) fn wait(&mut self) -> bool {
        self.wait_with(|pause| {
            park(pause);
            true
        })
    }

    /// The next wait through `pause` (false: it was cut short), unless it would end past the
    /// deadline; then the wait after it doubles, up to the cap.
    fn wait_with(&mut self, pause: impl FnOnce(Duration) -> bool) -> bool {
        if deadline_after(self.next) > self.deadline || !pause(self.next) {
            return false;
        }
        self.next = (self.next * 2).min(self.policy.max);
        true
    }
}

/// Checks `ready` every `interval` until it holds (true) or `within` has passed (false).
pub(crate) fn poll_until(
    interval: Duration,
    within: Duration,
    mut ready: impl FnMut() -> bool,
) -> bool {
    let deadline = deadline_after(within);
    loop {
        if ready() {
            return true;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        park(interval.min(left));
    }
}

/// Waits `pause`, returning early (true) as soon as `stop` is set; checks every 50 ms.
pub(crate) fn pause_unless(stop: &AtomicBool, pause: Duration) -> bool {
    poll_until(Duration::from_millis(50), pause, || {
        stop.load(Ordering::Relaxed)
    })
}

/// `within` from now, or a century from now when `within` is longer (`Duration::MAX`: no
/// deadline).
fn deadline_after(within: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(within)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

/// Waits `duration` for nothing in particular: a loop with nothing to do until its next round.
pub(crate) fn idle(duration: Duration) {
    park(duration);
}

#[allow(clippy::disallowed_methods)] // the one pause of the crate
fn park(duration: Duration) {
    std::thread::park_timeout(duration);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_cap_and_stop_at_the_deadline() {
        let mut attempts = Backoff::exponential(Duration::from_millis(1), Duration::from_millis(4))
            .start(Duration::from_millis(200));
        let mut waits = Vec::new();
        for _ in 0..4 {
            waits.push(attempts.next_wait());
            assert!(attempts.wait());
        }
        assert_eq!(waits, [1, 2, 4, 4].map(Duration::from_millis));
        let mut short = Backoff::fixed(Duration::from_secs(60)).start(Duration::from_millis(10));
        let started = Instant::now();
        assert!(!short.wait(), "a wait past the deadline is refused");
        assert!(started.elapsed() < Duration::from_secs(1), "and not waited");
    }

    #[test]
    fn polling_ends_when_ready_or_at_the_deadline() {
        let mut calls = 0;
        assert!(poll_until(
            Duration::from_millis(1),
            Duration::from_secs(10),
            || {
                calls += 1;
                calls == 3
            }
        ));
        assert_eq!(calls, 3);
        assert!(!poll_until(
            Duration::from_millis(1),
            Duration::from_millis(5),
            || false
        ));
        assert!(
            poll_until(Duration::from_millis(1), Duration::MAX, || true),
            "no deadline is no overflow"
        );
        assert!(Backoff::fixed(Duration::from_millis(1))
            .start(Duration::MAX)
            .wait());
    }

    #[test]
    fn a_stop_ends_a_retry_loop() {
        let stop = AtomicBool::new(false);
        let mut attempts = Backoff::fixed(Duration::from_millis(1)).start(Duration::from_secs(60));
        assert!(attempts.wait_unless(&stop));
        stop.store(true, Ordering::Relaxed);
        let mut long = Backoff::fixed(Duration::from_secs(60)).start(Duration::from_secs(600));
        assert!(!long.wait_unless(&stop), "no wait once stopped");
        assert!(!attempts.wait_unless(&stop));
    }

    #[test]
    fn a_pause_ends_early_on_stop() {
        let stop = AtomicBool::new(true);
        let started = Instant::now();
        assert!(pause_unless(&stop, Duration::from_secs(60)));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(!pause_unless(
            &AtomicBool::new(false),
            Duration::from_millis(5)
        ));
    }
}
