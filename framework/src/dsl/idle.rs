//! The idle-input policy of windowed operators: while no record arrives, event time may be
//! let flow with the wall clock so that windows still close.

use std::time::Duration;

use crate::processor::{Data, ProcessorContext, PunctuationType};

/// How often an operator with an idle policy checks its input, at most.
const CHECK_EVERY_MS: i64 = 1_000;

/// Advances an operator's time from the wall clock after its input has been idle for a
/// while: the operator then behaves as if event time had kept flowing at wall-clock speed
/// since its last record. Off unless an app asks for it per operator.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct IdleClock {
    /// Idle time after which time flows; `None` when the policy is off.
    after_ms: Option<i64>,
    /// Wall clock and operator time at the last record (or at start).
    anchor: Option<(i64, i64)>,
}

impl IdleClock {
    pub(crate) fn new(after: Option<Duration>) -> Self {
        IdleClock {
            after_ms: after.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            anchor: None,
        }
    }

    /// How often to check (a wall-clock punctuation), when the policy is on.
    pub(crate) fn check_interval(&self) -> Option<Duration> {
        self.after_ms.map(|after| {
            Duration::from_millis(u64::try_from(after.clamp(1, CHECK_EVERY_MS)).unwrap_or(1))
        })
    }

    /// Schedules the policy's wall-clock checks on the operator's context, when it is on.
    pub(crate) fn schedule<K: Data, V: Data>(&self, ctx: &mut ProcessorContext<'_, K, V>) {
        if let Some(every) = self.check_interval() {
            ctx.schedule(every, PunctuationType::WallClockTime);
        }
    }

    /// At wall clock `now`, the time an operator at `time` advances to by the policy,
    /// counted as an idle advance of the operator; `None` when it does not advance.
    pub(crate) fn advance<K: Data, V: Data>(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, V>,
        now: i64,
        time: i64,
    ) -> Option<i64> {
        let next = self.advanced_time(now, time)?;
        ctx.count_idle_advance();
        Some(next)
    }

    /// Notes input at wall clock `wall`, after which the operator's time is `time`.
    pub(crate) fn note_input(&mut self, wall: i64, time: i64) {
        if self.after_ms.is_some() {
            self.anchor = Some((wall, time));
        }
    }

    /// The operator time the policy gives at wall clock `now`, when the input has been idle
    /// long enough and that time lies past `time`; `None` otherwise (or before any record:
    /// there is no time to advance).
    pub(crate) fn advanced_time(&mut self, now: i64, time: i64) -> Option<i64> {
        let after = self.after_ms?;
        if time == i64::MIN {
            return None;
        }
        let (wall, at) = *self.anchor.get_or_insert((now, time));
        let idle = now.saturating_sub(wall);
        Some(at.saturating_add(idle)).filter(|&next| idle >= after && next > time)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_flows_with_the_wall_clock_only_after_the_idle_timeout() {
        let mut clock = IdleClock::new(Some(Duration::from_secs(5)));
        assert_eq!(clock.advanced_time(1_000, i64::MIN), None, "no record yet");
        clock.note_input(10_000, 500);
        assert_eq!(clock.advanced_time(14_999, 500), None);
        assert_eq!(clock.advanced_time(15_000, 500), Some(5_500));
        assert_eq!(clock.advanced_time(20_000, 5_500), Some(10_500));
        clock.note_input(21_000, 10_600);
        assert_eq!(clock.advanced_time(22_000, 10_600), None, "input again");
    }

    #[test]
    fn the_policy_is_off_by_default() {
        let mut clock = IdleClock::new(None);
        clock.note_input(0, 0);
        assert_eq!(clock.advanced_time(i64::MAX, 0), None);
        assert_eq!(clock.check_interval(), None);
    }
}
