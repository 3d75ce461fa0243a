//! Processing: one input record through its task's graph, punctuation, and sending what they
//! produce into the open transaction.

use std::time::Instant;

use rdkafka::message::BorrowedMessage;
use rdkafka::Message;

use super::record_errors::raw_record;
use super::TaskManager;
use crate::kafka::{OutgoingRecord, RecordOrigin};
use crate::record::{wall_clock_ms, RawRecord};
use crate::runtime::RuntimeError;
use crate::task::TaskError;
use crate::ErrorAction;

impl TaskManager {
    /// Processes one input record, or buffers it when its task reads several inputs (those
    /// are processed in timestamp order by [`process_buffered`](Self::process_buffered)).
    pub(crate) fn process(&mut self, msg: &BorrowedMessage<'_>) -> Result<(), RuntimeError> {
        let Some(id) = self.shared.plan.task_id(msg.topic(), msg.partition()) else {
            return Ok(());
        };
        let running = self.tasks.get(&id).is_some_and(|t| t.phase.is_running());
        if !running && self.rewound {
            // Fetched before the rewind dropped its task; the task created again moves the
            // consumer back to the committed offset, and takes the record again from there.
            return Ok(());
        }
        if !running {
            // Paused partitions deliver nothing; if one did, its position is now wrong.
            self.reset_dirty(&format!(
                "a record of {} [{}] arrived for a task that is not running",
                msg.topic(),
                msg.partition()
            ));
            return Ok(());
        }
        if self.already_taken(id, msg.topic(), msg.offset())
            || self.past_bounded_end(msg.topic(), msg.partition(), msg.offset())
        {
            return Ok(());
        }
        let raw = raw_record(msg);
        if let Some(task) = self.tasks.get_mut(&id).filter(|t| t.merges_inputs()) {
            task.buffer(raw);
            return Ok(());
        }
        self.process_raw(id, raw)
    }

    /// Processes one input record of task `id` (running, and at or past its start).
    pub(super) fn process_raw(
        &mut self,
        id: crate::task::TaskId,
        raw: RawRecord,
    ) -> Result<(), RuntimeError> {
        self.ensure_transaction()?;
        let topic = raw.topic.as_str();
        let partition = raw.partition.unwrap_or(id.partition);
        if let Some(poisoned) = self.take_poisoned(topic, partition, raw.offset) {
            self.shared.metrics.add_in(1);
            if let Some(input) = self.tasks.get_mut(&id).and_then(|t| t.input_mut(topic)) {
                input.next_offset = Some(raw.offset + 1);
            }
            return self.divert(
                &poisoned.diversion,
                id,
                &raw,
                &poisoned.error,
                "whose processing failed",
            );
        }
        let started = Instant::now();
        let now = wall_clock_ms();
        let mut out = std::mem::take(&mut self.out);
        let result = match self.tasks.get_mut(&id) {
            Some(task) => {
                if task.phase.note_first(raw.offset) {
                    tracing::info!(thread = self.thread, task = %id, topic = raw.topic, offset = raw.offset, "first input record");
                }
                if let Some(input) = task.input_mut(&raw.topic) {
                    input.next_offset = Some(raw.offset + 1);
                    self.producer.set_origin(Some(RecordOrigin {
                        topic: std::sync::Arc::clone(&input.origin),
                        partition,
                        offset: raw.offset,
                    }));
                }
                let result = task
                    .span
                    .in_scope(|| task.graph.process(&raw, now, &mut out));
                for (operator, n) in task.graph.take_operator_counts() {
                    self.shared.metrics.add_operator_counts(id, &operator, n);
                }
                result
            }
            None => Ok(()),
        };
        self.shared.metrics.add_in(1);
        match result {
            Ok(()) => {}
            // Not the record's fault: start over from the last commit and try again.
            Err(source) if source.action() == ErrorAction::Retry => {
                out.clear();
                self.out = out;
                return Err(RuntimeError::Task { task: id, source });
            }
            Err(err @ (TaskError::Deserialization { .. } | TaskError::InvalidTimestamp { .. })) => {
                out.clear();
                self.out = out;
                return self.on_bad_record(id, &raw, err);
            }
            Err(err) if err.is_processing_error() => {
                out.clear();
                self.out = out;
                return self.on_processing_error(id, &raw, err);
            }
            Err(source) => return Err(RuntimeError::Task { task: id, source }),
        }
        let sent = self
            .send_all(&out)
            .and_then(|()| self.register_changelogs(id));
        out.clear();
        self.out = out;
        self.shared.metrics.processing.observe(started.elapsed());
        sent
    }

    /// Fires due wall-clock punctuations of running tasks.
    pub(crate) fn punctuate(&mut self) -> Result<(), RuntimeError> {
        let now = wall_clock_ms();
        let mut out = std::mem::take(&mut self.out);
        for task in self.tasks.values_mut() {
            if task.phase.is_running() {
                let punctuated = task.graph.punctuate_wall_clock(now, &mut out);
                for (operator, n) in task.graph.take_operator_counts() {
                    self.shared
                        .metrics
                        .add_operator_counts(task.id, &operator, n);
                }
                punctuated.map_err(|source| RuntimeError::Task {
                    task: task.id,
                    source,
                })?;
            }
        }
        let result = if out.is_empty() {
            Ok(())
        } else {
            self.producer.set_origin(None);
            self.ensure_transaction().and_then(|()| self.send_all(&out))
        };
        out.clear();
        self.out = out;
        result
    }

    pub(super) fn send_all(&mut self, records: &[RawRecord]) -> Result<(), RuntimeError> {
        for r in records {
            let result = self.producer.send(OutgoingRecord {
                topic: &r.topic,
                partition: r.partition,
                key: r.key.as_deref(),
                value: r.value.as_deref(),
                timestamp: Some(r.timestamp),
                headers: &r.headers,
            });
            if let Err(e) = result {
                return self.producer_failed(e);
            }
        }
        self.shared
            .metrics
            .add_out(u64::try_from(records.len()).unwrap_or(0));
        Ok(())
    }
}
