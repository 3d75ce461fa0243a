//! Counters and latency histograms a running app keeps about its work.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::histogram::Histogram;
use super::status::StateSource;
use crate::task::OperatorCounts;

/// Counters shared by an app's stream threads.
#[derive(Debug, Default)]
pub struct Metrics {
    records_in: AtomicU64,
    records_out: AtomicU64,
    commits: AtomicU64,
    aborts: AtomicU64,
    skipped: AtomicU64,
    dead_lettered: AtomicU64,
    restored: AtomicU64,
    restarts: AtomicU64,
    processing_errors: AtomicU64,
    settle_waits: AtomicU64,
    rewind_skips: AtomicU64,
    moved_offsets: AtomicU64,
    state_ahead: AtomicU64,
    savepoints_applied: AtomicU64,
    external_commits: AtomicU64,
    external_rollbacks: AtomicU64,
    external_oldest_prepared_ms: AtomicU64,
    task_starts: [AtomicU64; StateSource::ALL.len()],
    /// Operator counts by (task, operator).
    operators: Mutex<BTreeMap<(String, String), OperatorCounts>>,
    /// Time to process one input record (its processors and sends).
    pub processing: Histogram,
    /// Time to commit one transaction (changelogs, offsets, commit, RocksDB apply).
    pub commit: Histogram,
    /// Where the instance's memory goes.
    pub(crate) memory: super::MemoryParts,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Input records processed.
    pub records_in: u64,
    /// Records sent to sink topics (including repartition topics).
    pub records_out: u64,
    /// Transactions (or at-least-once batches) committed.
    pub commits: u64,
    /// Transactions aborted.
    pub aborts: u64,
    /// Input records skipped by a `skip` handler (deserialization or processing errors).
    pub skipped: u64,
    /// Input records sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Changelog records replayed into stores.
    pub restored: u64,
    /// Times a stream thread started over with a new consumer and producer.
    pub restarts: u64,
    /// Input records whose processing failed or panicked (each aborted its transaction).
    pub processing_errors: u64,
    /// Tasks that found their committed input offset unsettled (a previous owner's
    /// transaction still open) and waited for it.
    pub settle_waits: u64,
    /// Input records skipped because the consumer delivered them again after the task took
    /// them (librdkafka moved a partition's position back).
    pub rewind_skips: u64,
    /// Thread start-overs because a restored task's committed input offset moved while it
    /// restored (a member that no longer owned the task committed).
    pub moved_offsets: u64,
    /// Restored inputs that resumed where their state stood, past the committed offset (the
    /// changelog held a committed transaction whose offsets the group did not show).
    pub state_ahead: u64,
    /// Savepoints this instance applied to the app at start (restore, rollback or fork).
    pub savepoints_applied: u64,
    /// Prepared transactions of two-phase sinks left by earlier owners (or zombies) and
    /// committed by a resolution pass, because Kafka committed what they belong to.
    pub external_commits_resolved: u64,
    /// The same, rolled back, because Kafka did not commit what they belong to.
    pub external_rollbacks_resolved: u64,
    /// Age in milliseconds of the app's oldest prepared transaction in its two-phase sinks
    /// at the last resolution pass (0: none).
    pub external_oldest_prepared_ms: u64,
    /// Tasks opened, by where their starting state came from (indexed as
    /// [`StateSource::ALL`]).
    pub task_starts: [u64; StateSource::ALL.len()],
}

impl MetricsSnapshot {
    /// Tasks opened with their starting state from `source`.
    pub fn task_starts(&self, source: StateSource) -> u64 {
        self.task_starts[source as usize]
    }
}

impl Metrics {
    pub(crate) fn add_in(&self, n: u64) {
        self.records_in.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_out(&self, n: u64) {
        self.records_out.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_commit(&self) {
        self.commits.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_abort(&self) {
        self.aborts.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_skipped(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_restart(&self) {
        self.restarts.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_processing_error(&self) {
        self.processing_errors.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_settle_wait(&self) {
        self.settle_waits.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_rewind_skip(&self) {
        self.rewind_skips.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_moved_offset(&self) {
        self.moved_offsets.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_state_ahead(&self) {
        self.state_ahead.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_savepoint_applied(&self) {
        self.savepoints_applied.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_external_resolved(&self, committed: bool) {
        let counter = if committed {
            &self.external_commits
        } else {
            &self.external_rollbacks
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn set_external_oldest_prepared(&self, age: Option<std::time::Duration>) {
        let ms = age.map_or(0, |a| u64::try_from(a.as_millis()).unwrap_or(u64::MAX));
        self.external_oldest_prepared_ms
            .store(ms, Ordering::Relaxed);
    }
    pub(crate) fn add_task_start(&self, source: StateSource) {
        self.task_starts[source as usize].fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn add_operator_counts(
        &self,
        task: impl std::fmt::Display,
        operator: &str,
        n: OperatorCounts,
    ) {
        let mut counts = self
            .operators
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let total = counts
            .entry((task.to_string(), operator.to_owned()))
            .or_default();
        total.late += n.late;
        total.idle_advances += n.idle_advances;
    }

    /// Per task and operator since start: records that came after their window closed, and
    /// advances of the operator's time by its idle-input policy (counted when processed, so
    /// a record processed again after an abort counts again).
    pub fn operator_counts(&self) -> Vec<(String, String, u64, u64)> {
        let counts = self
            .operators
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        counts
            .iter()
            .map(|((task, operator), n)| (task.clone(), operator.clone(), n.late, n.idle_advances))
            .collect()
    }

    pub(crate) fn add_restored(&self, n: u64) {
        self.restored.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        MetricsSnapshot {
            records_in: get(&self.records_in),
            records_out: get(&self.records_out),
            commits: get(&self.commits),
            aborts: get(&self.aborts),
            skipped: get(&self.skipped),
            dead_lettered: get(&self.dead_lettered),
            restored: get(&self.restored),
            restarts: get(&self.restarts),
            processing_errors: get(&self.processing_errors),
            settle_waits: get(&self.settle_waits),
            rewind_skips: get(&self.rewind_skips),
            moved_offsets: get(&self.moved_offsets),
            state_ahead: get(&self.state_ahead),
            savepoints_applied: get(&self.savepoints_applied),
            external_commits_resolved: get(&self.external_commits),
            external_rollbacks_resolved: get(&self.external_rollbacks),
            external_oldest_prepared_ms: get(&self.external_oldest_prepared_ms),
            task_starts: StateSource::ALL.map(|s| get(&self.task_starts[s as usize])),
        }
    }
}
