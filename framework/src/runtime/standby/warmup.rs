//! Warm-up before joining (`processing.warmup_before_join`): a new instance brings the local
//! state of every stateful task up to its changelog's end before its stream threads join the
//! group, so whatever tasks the rebalance hands it start with a short restore.
//!
//! Kafka Streams (KIP-441) keeps a task on its old owner until the new one is warm. Eddy's
//! assignment is librdkafka's cooperative-sticky assignor, which gives a joining member tasks
//! at once, so the warming happens before joining instead: it costs a copy of every stateful
//! task's state (from checkpoints when `snapshot.dir` is set, else from the changelogs), and
//! the copies the instance is not given stay on disk for later moves.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{standby_defs, Reach, Runner};
use crate::task::TaskId;

/// A copy at most this many records behind a changelog's end is warm.
const WARM_LAG: i64 = 100;

/// How often progress is checked and logged.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
const LOG_INTERVAL: Duration = Duration::from_secs(5);

impl Runner {
    /// Opens a copy of every stateful task and reads its changelogs until every copy is warm
    /// (see [`behind`]), `processing.warmup_timeout_ms` passes, or `shutdown` is set.
    /// Failures end the warm-up early: the instance then joins with what it has.
    pub(super) fn warm_up(&mut self, shutdown: &AtomicBool) {
        let started = Instant::now();
        let deadline = started + self.shared.config.processing.warmup_timeout;
        let tasks: Vec<TaskId> = self
            .shared
            .plan
            .tasks
            .iter()
            .filter(|t| !standby_defs(&self.shared, t.sub_topology).is_empty())
            .copied()
            .collect();
        tracing::info!(tasks = tasks.len(), "warming up before joining the group");
        let opened = self.open(&tasks).and_then(|()| self.reassign());
        if let Err(e) = opened {
            tracing::warn!(error = %e, "warm-up failed; joining without it");
            return;
        }
        let mut last_check = Instant::now();
        let mut last_log = Instant::now();
        let mut previous: Option<BTreeMap<(TaskId, String), Reach>> = None;
        loop {
            if shutdown.load(Ordering::Relaxed) {
                tracing::info!(took = ?started.elapsed(), "warm-up stopped: shutting down");
                return;
            }
            if let Err(e) = self.read(Duration::from_millis(200)) {
                tracing::warn!(error = %e, "warm-up failed; joining without it");
                return;
            }
            if last_check.elapsed() < CHECK_INTERVAL {
                continue;
            }
            last_check = Instant::now();
            let reaches = match self.reaches() {
                Ok(reaches) => reaches,
                Err(e) => {
                    tracing::warn!(error = %e, "warm-up failed; joining without it");
                    return;
                }
            };
            let behind = behind(&reaches, previous.as_ref());
            let remaining: i64 = reaches.values().map(|r| r.lag()).sum();
            previous = Some(reaches);
            if behind.is_empty() {
                tracing::info!(tasks = tasks.len(), remaining, took = ?started.elapsed(), "warm-up done");
                return;
            }
            if Instant::now() >= deadline {
                tracing::warn!(?behind, remaining, "warm-up timed out; joining anyway");
                return;
            }
            if last_log.elapsed() >= LOG_INTERVAL {
                last_log = Instant::now();
                tracing::info!(?behind, remaining, "warming up");
            }
        }
    }
}

/// The tasks whose copies are not warm yet. A copy is warm in a changelog partition when it
/// is within [`WARM_LAG`] records of the end, or has reached where the end was at the
/// previous check: under a steady load the end moves on while the copy reads, and a copy
/// that keeps pace with it will restore no more than a check interval's writes on its new
/// owner (a fixed bound alone never held under 1,000 lines/s).
fn behind(
    now: &BTreeMap<(TaskId, String), Reach>,
    previous: Option<&BTreeMap<(TaskId, String), Reach>>,
) -> BTreeSet<String> {
    now.iter()
        .filter(|(key, reach)| {
            let kept_pace = previous
                .and_then(|p| p.get(*key))
                .is_some_and(|before| reach.at >= before.end);
            reach.lag() > WARM_LAG && !kept_pace
        })
        .map(|((id, _), _)| id.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reaches(entries: &[(i32, i64, i64)]) -> BTreeMap<(TaskId, String), Reach> {
        entries
            .iter()
            .map(|&(partition, at, end)| {
                let id = TaskId {
                    sub_topology: 1,
                    partition,
                };
                ((id, "app-counts-changelog".to_owned()), Reach { at, end })
            })
            .collect()
    }

    #[test]
    fn a_copy_is_warm_near_the_end_or_once_it_keeps_pace_with_a_moving_end() {
        // Near the end: warm at the first check.
        assert!(behind(&reaches(&[(0, 950, 1_000)]), None).is_empty());
        // Far behind at the first check: nothing to compare with yet.
        assert_eq!(
            behind(&reaches(&[(0, 500, 1_000)]), None),
            BTreeSet::from(["1_0".to_owned()])
        );
        // The end moved on by 400 while the copy read past where it was: keeping pace.
        let before = reaches(&[(0, 500, 1_000), (1, 100, 5_000)]);
        let now = reaches(&[(0, 1_100, 1_400), (1, 2_000, 5_400)]);
        assert_eq!(
            behind(&now, Some(&before)),
            BTreeSet::from(["1_1".to_owned()]),
            "task 1_1 has not reached the end of a second ago"
        );
    }
}
