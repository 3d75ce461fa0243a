//! Warm-up before joining (`processing.warmup_before_join`): a new instance brings the local
//! state of every stateful task up to its changelog's end before its stream threads join the
//! group, so whatever tasks the rebalance hands it start with a short restore.
//!
//! Kafka Streams (KIP-441) keeps a task on its old owner until the new one is warm. Eddy's
//! assignment is librdkafka's cooperative-sticky assignor, which gives a joining member tasks
//! at once, so the warming happens before joining instead: it costs a copy of every stateful
//! task's state (from checkpoints when `snapshot.dir` is set, else from the changelogs), and
//! the copies the instance is not given stay on disk for later moves.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{standby_defs, Runner};
use crate::task::TaskId;

/// A task is warm when its copy is at most this many changelog records behind.
const WARM_LAG: i64 = 100;

/// How often progress is checked and logged.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);
const LOG_INTERVAL: Duration = Duration::from_secs(5);

impl Runner {
    /// Opens a copy of every stateful task and reads its changelogs until each is within
    /// [`WARM_LAG`] of the end, `processing.warmup_timeout_ms` passes, or `shutdown` is set.
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
        loop {
            if shutdown.load(Ordering::Relaxed) {
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
            let lags = match self.lags() {
                Ok(lags) => lags,
                Err(e) => {
                    tracing::warn!(error = %e, "warm-up failed; joining without it");
                    return;
                }
            };
            let behind: BTreeSet<String> = lags
                .iter()
                .filter(|(_, &lag)| lag > WARM_LAG)
                .map(|(id, _)| id.to_string())
                .collect();
            let remaining: i64 = lags.values().sum();
            if behind.is_empty() {
                tracing::info!(tasks = tasks.len(), took = ?started.elapsed(), "warm-up done");
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
