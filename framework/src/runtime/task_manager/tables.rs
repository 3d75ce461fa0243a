//! Tables first: a task that reads a table's topic besides other topics (a stream-table
//! join) holds its other inputs paused until each table input has reached the end it had
//! when the task started, so early stream records meet the table as it was, not empty.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::TopicPartitionList;

use super::TaskManager;
use crate::runtime::active_task::ActiveTask;
use crate::runtime::cadence::Duty;
use crate::runtime::RuntimeError;

/// How often held tasks are checked, and how long one end-offset lookup may take.
const CHECK_INTERVAL: Duration = Duration::from_millis(100);
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(1);

/// Marks the non-table inputs of a task that also reads tables as held (they are not
/// resumed with the others). A task reading only tables, or only streams, holds nothing.
pub(super) fn hold_streams(task: &mut ActiveTask) {
    let tables = task.inputs.iter().any(|i| i.table);
    let streams = task.inputs.iter().any(|i| !i.table);
    if tables && streams {
        for input in task.inputs.iter_mut().filter(|i| !i.table) {
            input.held = true;
        }
    }
}

impl TaskManager {
    /// Resumes the held inputs of tasks whose table inputs are loaded.
    pub(super) fn release_held<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<(), RuntimeError> {
        let holding = self.tasks.values().any(ActiveTask::holds_inputs);
        if !holding || !self.cadence.run_if_due(Duty::TableLoad, CHECK_INTERVAL) {
            return Ok(());
        }
        let positions = consumer.position().ok();
        let mut resume = TopicPartitionList::new();
        for task in self.tasks.values_mut() {
            if !task.holds_inputs() {
                continue;
            }
            let partition = task.id.partition;
            let mut loaded = true;
            for input in task.inputs.iter_mut().filter(|i| i.table) {
                if input.load_target.is_none() {
                    // The consumer is read_committed: its high watermark is the last stable
                    // offset. A lookup that fails (a broker restarting) is tried again.
                    match crate::kafka::watermarks(
                        consumer,
                        &input.topic,
                        partition,
                        LOOKUP_TIMEOUT,
                    ) {
                        // An empty table (nothing above the log start) is loaded at once.
                        Ok((low, end)) => {
                            input.load_target = Some(if end <= low { 0 } else { end });
                        }
                        Err(e) => {
                            tracing::warn!(task = %task.id, topic = input.topic, error = %e, "cannot read the end of a table input yet");
                            loaded = false;
                            continue;
                        }
                    }
                }
                let position = positions
                    .as_ref()
                    .and_then(|p| crate::kafka::offset_in(p, &input.topic, partition));
                // The position steps over transaction markers; the next offset to commit
                // does not, so either reaching the end counts.
                let reached = [position, input.next_offset, input.start]
                    .into_iter()
                    .flatten()
                    .max();
                if reached.unwrap_or(0) < input.load_target.unwrap_or(0) {
                    loaded = false;
                }
            }
            if loaded {
                for input in task.inputs.iter_mut().filter(|i| i.held) {
                    input.held = false;
                    resume.add_partition(&input.topic, partition);
                    if let Some(start) = input.start {
                        self.seeks.push(super::seeks::Seek::to(
                            &input.topic,
                            partition,
                            start,
                            input.position_ahead,
                        ));
                    }
                }
                tracing::info!(thread = self.thread, task = %task.id, "tables loaded; other inputs resumed");
            }
        }
        if resume.count() > 0 {
            consumer
                .resume(&resume)
                .map_err(|source| RuntimeError::Kafka {
                    what: "resuming inputs held for tables to load".to_owned(),
                    source,
                })?;
        }
        Ok(())
    }
}
