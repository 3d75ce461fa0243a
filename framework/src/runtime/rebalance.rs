//! The consumer context of a stream thread: hands rebalance events to its task manager.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;

use super::task_manager::TaskManager;

/// A partition's log end and the consumer's starting point in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PartitionEnds {
    /// Where the consumer starts before it consumed anything.
    pub start: i64,
    /// The end of the log the consumer can read up to.
    pub end: i64,
}

/// Owns the thread's [`TaskManager`] so rebalance callbacks, which librdkafka runs inside
/// `poll`, can commit before partitions leave and create tasks when they arrive.
pub(crate) struct RebalanceHandler {
    manager: Mutex<TaskManager>,
    /// Per input partition, as librdkafka's statistics last reported them: the end of its log
    /// (the last stable offset for read_committed, else the high watermark), and where the
    /// consumer starts when it has consumed nothing yet (the committed offset, else the log
    /// start).
    ends: Mutex<HashMap<(String, i32), PartitionEnds>>,
    read_committed: bool,
    /// Where the bytes this consumer holds fetched are reported, under `thread`.
    metrics: std::sync::Arc<crate::shared::Metrics>,
    thread: String,
}

impl RebalanceHandler {
    pub(crate) fn new(
        manager: TaskManager,
        read_committed: bool,
        metrics: std::sync::Arc<crate::shared::Metrics>,
        thread: &str,
    ) -> Self {
        RebalanceHandler {
            manager: Mutex::new(manager),
            ends: Mutex::new(HashMap::new()),
            read_committed,
            metrics,
            thread: thread.to_owned(),
        }
    }

    /// The ends of `topic` [`partition`] as last reported, if known.
    pub(crate) fn ends(&self, topic: &str, partition: i32) -> Option<PartitionEnds> {
        self.ends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(topic.to_owned(), partition))
            .copied()
    }

    /// The task manager; never held across a consumer poll.
    pub(crate) fn manager(&self) -> MutexGuard<'_, TaskManager> {
        self.manager
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ClientContext for RebalanceHandler {
    fn stats(&self, statistics: Statistics) {
        let mut ends = self
            .ends
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut queued = 0;
        for (name, topic) in statistics.topics {
            for (partition, p) in topic.partitions {
                // Every partition's queue is forwarded to the consumer's: each reports
                // that one queue's size.
                if partition >= 0 {
                    queued = queued.max(p.fetchq_size);
                }
                // librdkafka reports -1 (and the internal partition -1) when it does not know.
                let end = if self.read_committed {
                    p.ls_offset
                } else {
                    p.hi_offset
                };
                let start = if p.committed_offset >= 0 {
                    p.committed_offset
                } else {
                    p.lo_offset
                };
                if partition >= 0 && end >= 0 && start >= 0 {
                    ends.insert((name.clone(), partition), PartitionEnds { start, end });
                }
            }
        }
        self.metrics.memory.set_fetch_queue(&self.thread, queued);
    }
}

impl Drop for RebalanceHandler {
    fn drop(&mut self) {
        self.metrics.memory.drop_fetch_queue(&self.thread);
    }
}

impl ConsumerContext for RebalanceHandler {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(revoked) = rebalance {
            // Revoke runs before librdkafka releases the partitions, while this member's
            // generation still owns them: the last commit for them happens here.
            let lost = consumer.assignment_lost();
            self.manager().on_revoked(consumer, revoked, lost);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => self.manager().on_assigned(consumer, assigned),
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance error"),
        }
    }
}
