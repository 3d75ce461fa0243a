//! A stream thread's part in a bounded run: records past the run's ends are left unread, and
//! a task that read its inputs to their ends closes its windows, commits and says it is done.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, ConsumerContext};

use super::TaskManager;
use crate::record::wall_clock_ms;
use crate::runtime::cadence::Duty;
use crate::runtime::RuntimeError;
use crate::snapshot::ControlMessage;
use crate::task::TaskId;

/// How often the thread checks whether its tasks reached the run's ends.
const CHECK_INTERVAL: Duration = Duration::from_millis(100);

impl TaskManager {
    /// True when the record at `offset` of `topic` [`partition`] lies at or past the bounded
    /// run's end: it is not processed (nor committed past; a later run reads it).
    pub(super) fn past_bounded_end(&self, topic: &str, partition: i32, offset: i64) -> bool {
        self.shared
            .bounded
            .as_ref()
            .and_then(|run| run.end(topic, partition))
            .is_some_and(|end| offset >= end)
    }

    /// Finishes every running task that read all its inputs to the bounded run's ends.
    pub(crate) fn bounded_step<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<(), RuntimeError> {
        let Some(run) = self.shared.bounded.clone() else {
            return Ok(());
        };
        if self.halt.is_some() || !self.cadence.run_if_due(Duty::BoundedEnd, CHECK_INTERVAL) {
            return Ok(());
        }
        let candidates: Vec<TaskId> = self
            .tasks
            .values()
            .filter(|t| t.phase.is_running() && !run.is_done(t.id))
            .map(|t| t.id)
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        // Local knowledge only: where the consumer is (read once per check), what was
        // processed and what was committed when each task started.
        let positions =
            super::merge::read_positions(consumer).map_err(|source| RuntimeError::Kafka {
                what: "reading input positions".to_owned(),
                source,
            })?;
        for id in candidates {
            if self.reached_ends(consumer, &positions, id)? {
                self.finish(consumer, id)?;
                if self.halt.is_some() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// True when every input of task `id` was processed up to its end in the run. A
    /// repartition input has an end only once every task writing it finished.
    fn reached_ends<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        positions: &HashMap<(String, i32), i64>,
        id: TaskId,
    ) -> Result<bool, RuntimeError> {
        let Some(run) = self.shared.bounded.clone() else {
            return Ok(false);
        };
        let depth = self
            .shared
            .plan
            .depth
            .get(&id.sub_topology)
            .copied()
            .unwrap_or(0);
        let Some(task) = self.tasks.get(&id) else {
            return Ok(false);
        };
        let mut unknown_ends = Vec::new();
        for input in &task.inputs {
            let reached = match input.next_unprocessed() {
                Some(offset) => offset,
                None => positions
                    .get(&(input.topic.clone(), id.partition))
                    .copied()
                    .into_iter()
                    .chain(input.next_offset)
                    .chain(input.start)
                    .max()
                    .unwrap_or(0),
            };
            let end = run.end(&input.topic, id.partition).or_else(|| {
                self.bounded_ends
                    .get(&(input.topic.clone(), id.partition))
                    .copied()
            });
            match end {
                Some(end) if reached >= end => {}
                Some(_) => return Ok(false),
                None => unknown_ends.push(input.topic.clone()),
            }
        }
        if unknown_ends.is_empty() {
            return Ok(true);
        }
        if !run.upstream_done(&self.shared.plan, depth) {
            return Ok(false);
        }
        for topic in unknown_ends {
            // Its writers committed their last transaction: the consumer (read_committed)
            // sees the final end.
            let (_, end) =
                crate::kafka::watermarks(consumer, &topic, id.partition, Duration::from_secs(10))
                    .map_err(|source| RuntimeError::Kafka {
                    what: format!("reading the end of `{topic}` [{}]", id.partition),
                    source,
                })?;
            self.bounded_ends.insert((topic, id.partition), end);
        }
        // Checked against the ends at the next step.
        Ok(false)
    }

    /// Tells task `id`'s processors that input ended, commits what they emit with everything
    /// else open, and announces the task done once that commit succeeded.
    fn finish<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        id: TaskId,
    ) -> Result<(), RuntimeError> {
        let Some(run) = self.shared.bounded.clone() else {
            return Ok(());
        };
        // A transaction even when nothing is emitted: the operators' progress changes.
        self.ensure_transaction()?;
        let mut out = std::mem::take(&mut self.out);
        if let Some(task) = self.tasks.get_mut(&id) {
            self.producer.set_origin(None);
            let ended = task
                .span
                .in_scope(|| task.graph.end_of_input(wall_clock_ms(), &mut out));
            for (operator, n) in task.graph.take_operator_counts() {
                self.shared.metrics.add_operator_counts(id, &operator, n);
            }
            ended.map_err(|source| RuntimeError::Task { task: id, source })?;
        }
        let sent = self.send_all(&out);
        out.clear();
        self.out = out;
        sent?;
        self.commit(consumer)?;
        if self.halt.is_some() || self.producer.in_transaction() {
            // Not committed: the task finishes again after the start-over.
            return Ok(());
        }
        let done = ControlMessage::BoundedTaskDone {
            run: run.id().to_owned(),
            task: id.to_string(),
        };
        if let Some(control) = &self.control {
            if let Err(e) = control.send(&done, Duration::from_secs(10)) {
                // Finished again (nothing more to emit) and announced at the next check.
                tracing::warn!(task = %id, error = %e, "cannot announce a finished task; trying again");
                return Ok(());
            }
        }
        run.note_done(id);
        tracing::info!(thread = self.thread, task = %id, run = run.id(), "task read its input to the run's end");
        Ok(())
    }
}
