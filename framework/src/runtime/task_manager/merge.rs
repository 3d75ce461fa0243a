//! Merging a task's inputs: a task that reads several topics (a join, a merge) buffers what
//! the consumer delivers per input and takes records in timestamp order across inputs,
//! waiting a bounded time (`processing.max_task_idle_ms`) for an input that has nothing at
//! hand but more in its partition, as Kafka Streams does. Full buffers pause their
//! partition.

use std::collections::HashMap;
use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::TopicPartitionList;

use super::TaskManager;
use crate::runtime::active_task::ActiveTask;
use crate::runtime::rebalance::RebalanceHandler;
use crate::runtime::RuntimeError;
use crate::task::TaskId;

/// Records buffered per input at which its partition is paused, and below which it resumes.
const PAUSE_AT: usize = 5_000;
const RESUME_AT: usize = 1_000;

/// Records processed per task per loop step at most, so commits and punctuations keep their
/// cadence under backlog.
const BATCH: usize = 1_000;

/// The consumer's positions by input partition, and when they were read.
pub(super) type Positions = (Instant, HashMap<(String, i32), i64>);

/// How long the consumer's positions are reused. Reading them asks librdkafka's main thread
/// for the assignment (a round trip between threads); asked for every record, that took two
/// thirds of a join's time. A position a few milliseconds old only makes an input look
/// lagging a little longer.
const POSITIONS_FOR: std::time::Duration = std::time::Duration::from_millis(10);

/// The consumer's positions by input partition (those it has one for). Copied out: the list
/// librdkafka returns holds references to its partitions, and a consumer with such
/// references left cannot be destroyed (it hangs).
pub(super) fn read_positions<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
) -> rdkafka::error::KafkaResult<HashMap<(String, i32), i64>> {
    Ok(consumer
        .position()?
        .elements()
        .iter()
        .filter_map(|e| {
            let offset = e.offset().to_raw().filter(|&o| o >= 0)?;
            Some(((e.topic().to_owned(), e.partition()), offset))
        })
        .collect())
}

/// Which input to take the next record from: the lowest event time among the inputs with
/// records at hand, unless an input without records still has some in its partition and
/// has waited less than `max_idle`. `lagging` says whether an input's partition has more.
fn next_input(
    task: &mut ActiveTask,
    lagging: &dyn Fn(&str, Option<i64>) -> bool,
    max_idle: std::time::Duration,
) -> Option<usize> {
    let mut best: Option<(i64, usize)> = None;
    let mut waiting = false;
    for (i, input) in task.inputs.iter_mut().enumerate() {
        if input.held {
            continue;
        }
        match input.buffer.front() {
            Some((at, _)) => {
                input.starved_since = None;
                if best.is_none_or(|(t, _)| *at < t) {
                    best = Some((*at, i));
                }
            }
            None => {
                let reached = input.next_offset.or(input.start);
                if lagging(&input.topic, reached) {
                    let since = *input.starved_since.get_or_insert_with(Instant::now);
                    waiting |= since.elapsed() < max_idle;
                } else {
                    input.starved_since = None;
                }
            }
        }
    }
    if waiting {
        return None;
    }
    best.map(|(_, i)| i)
}

impl TaskManager {
    /// Processes the buffered records of tasks with several inputs, in timestamp order.
    pub(crate) fn process_buffered(
        &mut self,
        consumer: &BaseConsumer<RebalanceHandler>,
    ) -> Result<(), RuntimeError> {
        let ids: Vec<TaskId> = self
            .tasks
            .values()
            .filter(|t| t.merges_inputs() && t.phase.is_running())
            .filter(|t| t.inputs.iter().any(|i| !i.buffer.is_empty()))
            .map(|t| t.id)
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        // Taken out while records are processed (which needs the manager mutably) and put
        // back after; a path that returns early only costs a fresh read next time.
        let mut cached = self
            .positions
            .take()
            .filter(|(at, _)| at.elapsed() < POSITIONS_FOR);
        if cached.is_none() {
            cached = read_positions(consumer).ok().map(|p| (Instant::now(), p));
        }
        let positions = cached.as_ref().map(|(_, p)| p);
        let max_idle = self.shared.config.processing.max_task_idle;
        for id in ids {
            let partition = id.partition;
            // More in the partition: its end (as librdkafka last reported it) lies beyond the
            // consumer's position, or beyond what was processed when nothing was fetched.
            let lagging = |topic: &str, reached: Option<i64>| {
                let position = positions
                    .as_ref()
                    .and_then(|p| p.get(&(topic.to_owned(), partition)).copied())
                    .or(reached);
                consumer
                    .context()
                    .ends(topic, partition)
                    .is_some_and(|ends| ends.end > position.unwrap_or(ends.start))
            };
            for _ in 0..BATCH {
                if self.halt.is_some() {
                    return Ok(());
                }
                let Some(task) = self.tasks.get_mut(&id) else {
                    break;
                };
                let Some(i) = next_input(task, &lagging, max_idle) else {
                    break;
                };
                let Some((_, raw)) = task.inputs[i].buffer.pop_front() else {
                    break;
                };
                self.process_raw(id, raw)?;
            }
        }
        self.positions = cached;
        self.pause_full_buffers(consumer)
    }

    /// Pauses inputs whose buffers are full and resumes those that drained (not while a
    /// savepoint holds inputs paused, nor inputs held for tables to load).
    fn pause_full_buffers(
        &mut self,
        consumer: &BaseConsumer<RebalanceHandler>,
    ) -> Result<(), RuntimeError> {
        let mut pause = TopicPartitionList::new();
        let mut resume = TopicPartitionList::new();
        let savepoint = self.round.is_some();
        for task in self.tasks.values_mut().filter(|t| t.merges_inputs()) {
            for input in &mut task.inputs {
                if !input.paused_full && input.buffer.len() >= PAUSE_AT {
                    input.paused_full = true;
                    pause.add_partition(&input.topic, task.id.partition);
                } else if input.paused_full
                    && input.buffer.len() <= RESUME_AT
                    && !savepoint
                    && !input.held
                {
                    input.paused_full = false;
                    resume.add_partition(&input.topic, task.id.partition);
                }
            }
        }
        let kafka = |what: &str| {
            let what = what.to_owned();
            move |source| RuntimeError::Kafka { what, source }
        };
        if pause.count() > 0 {
            consumer
                .pause(&pause)
                .map_err(kafka("pausing inputs with full buffers"))?;
        }
        if resume.count() > 0 {
            consumer
                .resume(&resume)
                .map_err(kafka("resuming inputs whose buffers drained"))?;
        }
        Ok(())
    }

    /// True when some task has buffered records it could not take yet (the thread then
    /// polls without blocking long).
    pub(crate) fn has_buffered(&self) -> bool {
        self.tasks
            .values()
            .any(|t| t.inputs.iter().any(|i| !i.buffer.is_empty()))
    }
}
