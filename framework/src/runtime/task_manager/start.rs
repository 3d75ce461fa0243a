//! Where a task's input resumes: the committed offset, looked up before the task runs, and a
//! guard that never processes a record below it.
//!
//! librdkafka (2.12) can start a newly assigned partition at `auto.offset.reset` instead of
//! its committed offset: when the committed-offset fetch meets the previous owner's pending
//! transactional commit (UNSTABLE_OFFSET_COMMIT) while the assignment changes, the partition
//! goes back to the pending list with no offset. Reading from the log start would reprocess
//! records whose results are already committed. So each task looks up its committed offset
//! itself (a read_committed consumer asks for stable offsets, waiting out a pending commit)
//! and skips, then seeks past, anything below it.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

use super::TaskManager;
use crate::runtime::RuntimeError;
use crate::task::TaskId;
use crate::ErrorAction;

/// How long one committed-offset lookup may block the stream thread.
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(500);

impl TaskManager {
    /// Looks up the committed input offset of task `id` once. Returns false while it is not
    /// known yet (the previous owner's transaction is still settling); the task then waits.
    pub(super) fn resolve_start<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        id: TaskId,
    ) -> Result<bool, RuntimeError> {
        let Some(task) = self.tasks.get_mut(&id) else {
            return Ok(false);
        };
        if task.start_resolved {
            return Ok(true);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&task.topic, id.partition);
        match consumer.committed_offsets(tpl, LOOKUP_TIMEOUT) {
            Ok(committed) => {
                task.start_offset = committed
                    .find_partition(&task.topic, id.partition)
                    .and_then(|e| match e.offset() {
                        Offset::Offset(o) if o >= 0 => Some(o),
                        _ => None,
                    });
                task.start_resolved = true;
                Ok(true)
            }
            Err(e) if crate::kafka::classify(&e) == ErrorAction::Retry => {
                tracing::debug!(task = %id, error = %e, "committed offset not stable yet");
                Ok(false)
            }
            Err(source) => Err(RuntimeError::Kafka {
                what: format!(
                    "reading the committed offset of {} [{}]",
                    task.topic, id.partition
                ),
                source,
            }),
        }
    }

    /// True when the record at `offset` of task `id` lies below the task's committed offset:
    /// it was processed and committed before, so it is skipped, and the consumer is moved to
    /// the committed offset at the next loop step.
    pub(super) fn below_start(&mut self, id: TaskId, offset: i64) -> bool {
        let Some(task) = self.tasks.get_mut(&id) else {
            return false;
        };
        let Some(start) = task.start_offset.filter(|&s| offset < s) else {
            return false;
        };
        if !task.seek_requested {
            task.seek_requested = true;
            tracing::warn!(
                thread = self.thread,
                task = %id,
                offset,
                committed = start,
                "the consumer started below the committed offset; skipping to it"
            );
            self.seeks.push((task.topic.clone(), id.partition, start));
        }
        true
    }

    /// Moves the consumer of tasks that started too early to their committed offsets.
    pub(crate) fn apply_seeks<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        for (topic, partition, offset) in std::mem::take(&mut self.seeks) {
            if let Err(e) = consumer.seek(
                &topic,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(1),
            ) {
                // Records below the committed offset are still skipped one by one.
                tracing::warn!(topic, partition, offset, error = %e, "seek failed");
            }
        }
    }
}
