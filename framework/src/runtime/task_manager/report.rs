//! The stream thread's report to the instance status: tasks, lag, restore progress, memory.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};

use super::TaskManager;
use crate::runtime::cadence::Duty;
use crate::runtime::rebalance::RebalanceHandler;
use crate::shared::{TaskState, TaskStatus, ThreadStatus};

/// How often a thread reports when nothing changed.
pub(super) const INTERVAL: Duration = Duration::from_secs(1);

/// How often restore progress is logged.
const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(5);

impl TaskManager {
    /// Publishes what the thread owns and how far it got, at most once per [`INTERVAL`]
    /// unless an assignment changed (which clears the cadence's [`Duty::Report`]).
    pub(crate) fn publish_status(&mut self, consumer: &BaseConsumer<RebalanceHandler>) {
        if !self.cadence.run_if_due(Duty::Report, INTERVAL) {
            return;
        }
        let log_progress = self
            .cadence
            .is_due(Duty::ProgressLog, PROGRESS_LOG_INTERVAL);
        // A failed position read reports no lag rather than a wrong one.
        let positions = consumer.position().ok();
        let mut tasks = Vec::with_capacity(self.tasks.len());
        for task in self.tasks.values_mut() {
            let partition = task.id.partition;
            // Summed over the task's inputs; unknown while any input's end is.
            let mut lag = Some(0);
            for input in &task.inputs {
                let position = positions
                    .as_ref()
                    .and_then(|p| crate::kafka::offset_in(p, &input.topic, partition));
                // The end librdkafka last saw (its statistics): the last stable offset for a
                // read_committed consumer. Before the first record, the consumer stands where
                // it will start.
                let input_lag = consumer
                    .context()
                    .ends(&input.topic, partition)
                    .map(|ends| (ends.end - position.unwrap_or(ends.start)).max(0));
                lag = lag.zip(input_lag).map(|(a, b)| a + b);
            }
            let stores = task.graph.stores();
            let restore_remaining: i64 = task
                .phase
                .restores()
                .iter()
                .filter(|r| !r.done)
                .map(|r| {
                    let at = stores
                        .changelog_position(&r.store)
                        .ok()
                        .flatten()
                        .unwrap_or(0);
                    r.target.map_or(0, |t| (t - at).max(0))
                })
                .sum();
            let readers = stores.readers();
            let rocksdb_memory_bytes =
                (!readers.is_empty()).then(|| readers.iter().map(|r| r.memory_bytes()).sum());
            let state = task.phase.status();
            if log_progress && state == TaskState::Restoring {
                tracing::info!(
                    thread = self.thread,
                    task = %task.id,
                    remaining = restore_remaining,
                    restoring_for = ?task.created.elapsed(),
                    "restoring"
                );
            }
            tasks.push(TaskStatus {
                task: task.id.to_string(),
                topic: task
                    .inputs
                    .iter()
                    .map(|i| i.topic.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                partition,
                state,
                restore_remaining,
                state_source: task.state_source,
                replays: task.replays.clone(),
                lag,
                rocksdb_memory_bytes,
            });
        }
        if log_progress {
            self.cadence.ran(Duty::ProgressLog);
        }
        self.shared.status.publish(
            &self.thread,
            ThreadStatus {
                assigned: self.assigned,
                tasks,
            },
        );
    }
}
