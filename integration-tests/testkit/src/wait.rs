//! Waiting in tests and benchmarks: for a condition, up to a deadline ([`eventually`]), or on
//! purpose, as a loop's pace ([`pace`]).

use std::time::{Duration, Instant};

use crate::TestkitError;

/// How often [`eventually`] checks its condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Waits until `condition` holds, checking every [`POLL_INTERVAL`], failing after `deadline`.
///
/// # Errors
/// [`TestkitError::Timeout`] naming `what` when the condition still does not hold at the
/// deadline, or the condition's own error as soon as it returns one.
pub fn eventually<E: From<TestkitError>>(
    what: &str,
    deadline: Duration,
    condition: impl FnMut() -> Result<bool, E>,
) -> Result<(), E> {
    eventually_every(what, deadline, POLL_INTERVAL, condition)
}

/// Waits as [`eventually`] does, checking every `interval`: for a condition whose check
/// costs something (a probe record, a query), or a wait measured to the millisecond.
///
/// # Errors
/// [`TestkitError::Timeout`] naming `what` when the condition still does not hold at the
/// deadline, or the condition's own error as soon as it returns one.
pub fn eventually_every<E: From<TestkitError>>(
    what: &str,
    deadline: Duration,
    interval: Duration,
    mut condition: impl FnMut() -> Result<bool, E>,
) -> Result<(), E> {
    let start = Instant::now();
    while !condition()? {
        if start.elapsed() > deadline {
            return Err(TestkitError::Timeout {
                what: what.to_owned(),
                after: deadline,
            }
            .into());
        }
        std::thread::park_timeout(interval); // the poll interval of this deadline wait
    }
    Ok(())
}

/// Pauses for `period` on purpose, as the pace of a loop that waits for no condition: a
/// sampling period, a send retried while the producer's queue drains on its own thread, a
/// demo's timeline. Ends early when the thread is unparked. Never a synchronisation: a wait
/// for something to happen is [`eventually`].
pub fn pace(period: Duration) {
    std::thread::park_timeout(period);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_that_comes_true_ends_the_wait() {
        let mut calls = 0;
        let waited: Result<(), TestkitError> = eventually_every(
            "three calls",
            Duration::from_secs(10),
            Duration::ZERO,
            || {
                calls += 1;
                Ok(calls == 3)
            },
        );
        assert!(waited.is_ok());
        assert_eq!(calls, 3);
    }

    #[test]
    fn a_condition_that_stays_false_times_out_naming_it() {
        let waited: Result<(), TestkitError> =
            eventually("never", Duration::from_millis(1), || Ok(false));
        assert!(
            matches!(&waited, Err(TestkitError::Timeout { what, .. }) if what == "never"),
            "{waited:?}"
        );
    }
}
