//! Where a task's input resumes: the committed offset, looked up before the task restores,
//! and a guard that never processes a record below it.
//!
//! The lookup comes first because a previous owner's transaction can have its input offsets
//! accepted while its changelog records are still on their way (a changelog leader moving,
//! or the owner frozen in between): the changelog's end is only the state the committed
//! offset stands for once that offset is stable, and a read_committed lookup waits for that.
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
use crate::runtime::cadence::Duty;
use crate::runtime::RuntimeError;
use crate::task::TaskId;
use crate::ErrorAction;

/// How long one committed-offset lookup may block the stream thread (its running tasks wait
/// meanwhile), and how often it is tried while offsets are not stable: often in a task's
/// first second (a dead owner's transaction is aborted within tens of milliseconds of its
/// successor's producer starting), then less often (a live previous owner's transaction can
/// take up to its timeout).
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(100);
const LOOKUP_INTERVAL_FIRST: Duration = Duration::from_millis(20);
const LOOKUP_INTERVAL: Duration = Duration::from_millis(100);
const FIRST_SECOND: Duration = Duration::from_secs(1);

impl TaskManager {
    /// Looks up the committed input offsets of tasks `ids` that do not know theirs yet, in
    /// one request. Tasks whose offset is not stable yet (the previous owner's transaction is
    /// still settling) stay unresolved and wait.
    pub(super) fn resolve_starts<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        ids: &[TaskId],
    ) -> Result<(), RuntimeError> {
        let mut tpl = TopicPartitionList::new();
        let mut interval = LOOKUP_INTERVAL;
        for id in ids {
            let Some(task) = self.tasks.get(id) else {
                continue;
            };
            // A task waits for all its input partitions before it looks up any offset.
            if task.phase.is_settled() || !task.fully_assigned() {
                continue;
            }
            if task.created.elapsed() < FIRST_SECOND {
                interval = LOOKUP_INTERVAL_FIRST;
            }
            for input in &task.inputs {
                if task.phase.awaits_offset(&input.topic) {
                    tpl.add_partition(&input.topic, id.partition);
                }
            }
        }
        if tpl.count() == 0 || !self.cadence.run_if_due(Duty::StartLookup, interval) {
            return Ok(());
        }
        let asked = std::time::Instant::now();
        let looked_up = consumer.committed_offsets(tpl, LOOKUP_TIMEOUT);
        tracing::debug!(thread = self.thread, took = ?asked.elapsed(), ok = looked_up.is_ok(), "committed offsets looked up");
        let committed = match looked_up {
            Ok(committed) => committed,
            Err(e) if crate::kafka::classify(&e) == ErrorAction::Retry => {
                for id in ids {
                    self.note_unsettled(*id, &e.to_string());
                }
                return Ok(());
            }
            Err(source) => {
                return Err(RuntimeError::Kafka {
                    what: "reading the committed offsets of restored tasks".to_owned(),
                    source,
                })
            }
        };
        for id in ids {
            let mut unsettled = None;
            let Some(task) = self.tasks.get_mut(id) else {
                continue;
            };
            if task.phase.is_settled() || !task.fully_assigned() {
                continue;
            }
            for input in &mut task.inputs {
                if !task.phase.awaits_offset(&input.topic) {
                    continue;
                }
                let Some(entry) = committed.find_partition(&input.topic, id.partition) else {
                    continue;
                };
                if let Err(e) = entry.error() {
                    unsettled = Some(e.to_string());
                    continue;
                }
                let start = match entry.offset() {
                    Offset::Offset(o) if o >= 0 => Some(o),
                    _ => None,
                };
                input.start = start;
                input.committed_offset = start;
                task.phase.offset_known(&input.topic);
                // Every input carries the task's stream time; the largest is the latest.
                if let Some(time) = crate::runtime::stream_time::decode(entry.metadata()) {
                    task.graph.resume_stream_time(time);
                }
            }
            if task.phase.offsets_known() && task.phase.settle(task.graph.stores().changelogged()) {
                // Its restore is planned at once, not at the next periodic check.
                self.cadence.clear(Duty::StableCheck);
            }
            if let Some(error) = unsettled {
                self.note_unsettled(*id, &error);
            }
        }
        Ok(())
    }

    /// Looks up the committed offsets of the `restored` tasks once more before they run, and
    /// returns those whose offsets are still where they settled; tasks whose offsets cannot
    /// be read now wait for the next step.
    ///
    /// Only the owner of a task commits its offsets (and only once it runs: see `prepare`),
    /// so they cannot move while it restores, unless a member that lost the task committed
    /// after all (a coordinator that took a
    /// commit it should have refused, or a check like `kafka::not_fenceable` missing a case).
    /// The restore may then hold that commit's changes while the settled offset does not:
    /// running would take its records a second time on state that already counts them. So
    /// the thread starts over instead, and its next generation settles the new offset and
    /// restores up to it.
    pub(super) fn confirm_starts<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        restored: Vec<TaskId>,
    ) -> Result<Vec<TaskId>, RuntimeError> {
        let mut tpl = TopicPartitionList::new();
        for id in &restored {
            if let Some(task) = self.tasks.get(id) {
                for input in &task.inputs {
                    tpl.add_partition(&input.topic, id.partition);
                }
            }
        }
        if tpl.count() == 0 {
            return Ok(restored);
        }
        // Due at once after a confirmation that went through; every 100 ms while one waits.
        if !self.cadence.run_if_due(Duty::StartConfirm, LOOKUP_INTERVAL) {
            return Ok(Vec::new());
        }
        let committed = match consumer.committed_offsets(tpl, LOOKUP_TIMEOUT) {
            Ok(committed) => committed,
            Err(e) if crate::kafka::classify(&e) == ErrorAction::Retry => {
                self.note_unconfirmed(&e.to_string());
                return Ok(Vec::new());
            }
            Err(source) => {
                return Err(RuntimeError::Kafka {
                    what: "confirming the committed offsets of restored tasks".to_owned(),
                    source,
                })
            }
        };
        let waiting = restored.len();
        let mut confirmed = Vec::new();
        for id in restored {
            let Some(task) = self.tasks.get(&id) else {
                continue;
            };
            let mut readable = true;
            for input in &task.inputs {
                let entry = committed
                    .find_partition(&input.topic, id.partition)
                    .filter(|e| e.error().is_ok());
                let Some(entry) = entry else {
                    readable = false;
                    continue;
                };
                let now = match entry.offset() {
                    Offset::Offset(o) if o >= 0 => Some(o),
                    _ => None,
                };
                if now != input.start {
                    let reason = format!(
                        "the committed offset of {} [{}] moved from {:?} to {now:?} while task {id} restored: a member that no longer owned the task committed",
                        input.topic, id.partition, input.start
                    );
                    tracing::error!(thread = self.thread, task = %id, "{reason}; starting over to settle and restore again");
                    self.shared.metrics.add_moved_offset();
                    self.reset_dirty(&reason);
                    return Ok(Vec::new());
                }
            }
            if readable {
                confirmed.push(id);
            }
        }
        if confirmed.len() == waiting {
            self.cadence.clear(Duty::StartConfirm);
            self.unconfirmed_since = None;
        } else {
            self.note_unconfirmed("an offset is not stable yet");
        }
        Ok(confirmed)
    }

    /// Moves the start of each input of restored task `id` up to where its state stands, when
    /// the changelog records its restore replayed carried input offsets past the committed
    /// one ([`crate::runtime::state_position`]): a committed transaction whose offsets the
    /// group does not show, which a coordinator failover once lost. Taking its records
    /// again would count them twice on state that already holds them.
    pub(super) fn start_where_state_stands(&mut self, id: TaskId) {
        // At-least-once reads changelogs uncommitted, aborted transactions' records included.
        if !self.producer.is_transactional() {
            return;
        }
        let Some(task) = self.tasks.get_mut(&id) else {
            return;
        };
        for input in &mut task.inputs {
            let Some(state) = input.state_position else {
                continue;
            };
            if input.start.is_some_and(|start| start >= state) {
                continue;
            }
            tracing::error!(
                thread = self.thread,
                task = %id,
                topic = input.topic,
                committed = ?input.start,
                state,
                "the restored state stands past the committed offset: the changelog holds a committed transaction whose offsets the group does not show; resuming where the state stands"
            );
            self.shared.metrics.add_state_ahead();
            input.start = Some(state);
            input.committed_offset = Some(state);
        }
    }

    /// Logs when restored tasks have waited a while to confirm their committed offsets (the
    /// coordinator unreachable, or a pending transaction on their offsets), then every 10 s.
    fn note_unconfirmed(&mut self, error: &str) {
        let since = *self
            .unconfirmed_since
            .get_or_insert_with(std::time::Instant::now);
        let waited = since.elapsed();
        if waited >= Duration::from_secs(1)
            && self
                .cadence
                .run_if_due(Duty::ProgressLog, Duration::from_secs(10))
        {
            tracing::info!(thread = self.thread, waited = ?waited, error, "restored tasks wait to confirm their committed offsets");
        }
    }

    /// Logs once per task that its committed offset cannot be read yet (typically the
    /// previous owner's transaction still holds it: the offset is not stable).
    fn note_unsettled(&mut self, id: TaskId, error: &str) {
        if self
            .tasks
            .get_mut(&id)
            .is_some_and(|t| t.phase.note_waiting())
        {
            self.shared.metrics.add_settle_wait();
            tracing::info!(thread = self.thread, task = %id, error, "waiting for the committed offset to settle");
        }
    }

    /// True when the record at `offset` of `topic` for task `id` must be skipped: it lies
    /// below that input's committed offset (processed and committed before), or below what
    /// the task already took in this incarnation (the consumer went back: librdkafka moves a
    /// partition's position back on its own after a leader change it reads as a truncation,
    /// or to `auto.offset.reset` after a fetch error, and taking those records again would
    /// count them twice). The consumer is moved to where the input resumes at the next loop
    /// step.
    pub(super) fn already_taken(&mut self, id: TaskId, topic: &str, offset: i64) -> bool {
        let Some(input) = self.tasks.get_mut(&id).and_then(|t| t.input_mut(topic)) else {
            return false;
        };
        let Some(crate::runtime::active_task::Skip {
            resume,
            seek,
            went_back,
        }) = input.repeated(offset)
        else {
            return false;
        };
        if went_back {
            self.shared.metrics.add_rewind_skip();
        }
        if seek {
            if went_back {
                tracing::warn!(
                    thread = self.thread,
                    task = %id,
                    topic,
                    offset,
                    resume,
                    "the consumer went back to a record this task took already; skipping to where it was"
                );
            } else {
                tracing::warn!(
                    thread = self.thread,
                    task = %id,
                    topic,
                    offset,
                    committed = resume,
                    "the consumer started below the committed offset; skipping to it"
                );
            }
            self.seeks
                .push(super::seeks::Seek::to(topic, id.partition, resume, false));
        }
        true
    }
}
