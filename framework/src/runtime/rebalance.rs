//! The consumer context of a stream thread: hands rebalance events to its task manager.

use std::sync::{Mutex, MutexGuard};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::ClientContext;

use super::task_manager::TaskManager;

/// Owns the thread's [`TaskManager`] so rebalance callbacks, which librdkafka runs inside
/// `poll`, can commit before partitions leave and create tasks when they arrive.
pub(crate) struct RebalanceHandler {
    manager: Mutex<TaskManager>,
}

impl RebalanceHandler {
    pub(crate) fn new(manager: TaskManager) -> Self {
        RebalanceHandler {
            manager: Mutex::new(manager),
        }
    }

    /// The task manager; never held across a consumer poll.
    pub(crate) fn manager(&self) -> MutexGuard<'_, TaskManager> {
        self.manager
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ClientContext for RebalanceHandler {}

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
