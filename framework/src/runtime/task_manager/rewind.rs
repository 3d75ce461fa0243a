//! Rewinding in place: a transaction whose offsets the coordinator refused during a
//! rebalance of the classic protocol is aborted, and the thread's tasks are created again
//! on the same consumer and producer.

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};

use super::TaskManager;
use crate::runtime::cadence::Duty;
use crate::runtime::RuntimeError;

impl TaskManager {
    /// Rewind: aborts the open transaction and drops every task, as
    /// [`reset_dirty`](Self::reset_dirty) does, but keeps the consumer and producer: the
    /// next loop step creates the tasks of the partitions the consumer holds again, and
    /// they restart from the last commit. A coordinator that refused a transaction's offsets
    /// during a rebalance of the classic protocol fenced nothing: the producer is sound
    /// and the consumer still a member, and a new generation (a new member joining, one
    /// more rebalance round for every member) cost seconds of every rescale.
    ///
    /// False, with nothing done, where only a start-over is safe: the consumer protocol, the
    /// generation already ends, a task does not know its committed offsets (the consumer's position is past
    /// them, and with none committed there is no offset to move it back to), or the abort
    /// failed.
    pub(super) fn rewind(&mut self, reason: &str) -> bool {
        // Under the consumer protocol the same refusal means the member was fenced (its
        // member epoch is stale): it may have lost its partitions, so it starts over.
        if self.shared.config.processing.group_protocol == crate::config::GroupProtocol::Consumer {
            return false;
        }
        let positions_known = self.tasks.values().all(|t| {
            t.inputs
                .iter()
                .all(|i| i.committed_offset.is_some() || !t.phase.is_running())
        });
        if self.halt.is_some() || !positions_known || !self.producer.in_transaction() {
            return false;
        }
        if let Err(e) = self.producer.abort() {
            tracing::warn!(error = %e, "abort failed; starting over");
            return false;
        }
        self.shared.metrics.add_abort();
        tracing::warn!(
            thread = self.thread,
            reason,
            "aborted; the tasks restart from the last commit on the same consumer and producer"
        );
        self.drop_all_dirty();
        self.seeks.clear();
        self.rewound = true;
        true
    }

    /// After a [rewind](TaskManager::rewind): creates the tasks of every partition the
    /// consumer holds again, as an assignment does; they restore, look up their committed
    /// offsets and move the consumer back to them before they run.
    pub(crate) fn recreate_rewound<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<(), RuntimeError> {
        if !std::mem::take(&mut self.rewound) || self.halt.is_some() {
            return Ok(());
        }
        let held = consumer
            .assignment()
            .map_err(|source| RuntimeError::Kafka {
                what: "reading the assignment to recreate rewound tasks".to_owned(),
                source,
            })?;
        self.cadence.clear(Duty::Report);
        self.cadence.clear(Duty::StartLookup);
        self.assign(consumer, &held)?;
        for task in self.tasks.values_mut() {
            for input in &mut task.inputs {
                input.position_ahead = true;
            }
        }
        tracing::info!(
            thread = self.thread,
            tasks = self.tasks.len(),
            "rewound tasks created again"
        );
        Ok(())
    }
}
