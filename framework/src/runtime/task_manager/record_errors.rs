//! What happens to an input record that cannot be decoded or whose processing failed: the
//! handlers (`errors.deserialization`, `errors.processing`) that stop, skip or dead-letter it.

use rdkafka::message::{BorrowedMessage, Headers as _};
use rdkafka::Message;

use super::TaskManager;
use crate::record::{wall_clock_ms, RawRecord};
use crate::runtime::shared_state::{Diversion, Poisoned};
use crate::runtime::RuntimeError;
use crate::task::{TaskError, TaskId};

impl TaskManager {
    pub(super) fn on_bad_record(
        &mut self,
        task: TaskId,
        raw: &RawRecord,
        err: TaskError,
    ) -> Result<(), RuntimeError> {
        match Diversion::of(&self.shared.config.errors.deserialization) {
            None => Err(RuntimeError::Task { task, source: err }),
            Some(diversion) => self.divert(
                &diversion,
                task,
                raw,
                &err.to_string(),
                "that cannot be decoded",
            ),
        }
    }

    /// A record's processing failed or panicked, possibly after it changed state or sent
    /// output: the transaction is aborted so none of that commits. Under the `fail` handler
    /// the thread stops; otherwise the record is remembered and the thread starts over from
    /// the last commit, skipping or dead-lettering it when it comes again.
    pub(super) fn on_processing_error(
        &mut self,
        task: TaskId,
        raw: &RawRecord,
        err: TaskError,
    ) -> Result<(), RuntimeError> {
        self.shared.metrics.add_processing_error();
        let partition = raw.partition.unwrap_or(task.partition);
        let at = format!("{} [{partition}] offset {}", raw.topic, raw.offset);
        let Some(diversion) = Diversion::of(&self.shared.config.errors.processing) else {
            tracing::error!(task = %task, error = %err, record = at, "processing failed; aborting the transaction and stopping (errors.processing = fail)");
            return Err(RuntimeError::RecordFailed {
                task,
                topic: raw.topic.clone(),
                partition,
                offset: raw.offset,
                source: Box::new(err),
            });
        };
        tracing::warn!(task = %task, error = %err, record = at, "processing failed; aborting the transaction to process it again without this record");
        let poisoned = Poisoned {
            error: err.to_string(),
            diversion,
        };
        self.shared
            .poisoned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert((raw.topic.clone(), partition, raw.offset), poisoned);
        self.reset_dirty(&format!("processing the record at {at} failed: {err}"));
        Ok(())
    }

    /// What a failed record was remembered with, taken once.
    pub(super) fn take_poisoned(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Option<Poisoned> {
        self.shared
            .poisoned
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&(topic.to_owned(), partition, offset))
    }

    /// Skips `raw` or sends it to the dead-letter topic, as `diversion` says, in the open
    /// transaction.
    pub(super) fn divert(
        &mut self,
        diversion: &Diversion,
        task: TaskId,
        raw: &RawRecord,
        error: &str,
        what: &str,
    ) -> Result<(), RuntimeError> {
        let partition = raw.partition.unwrap_or(task.partition);
        match diversion {
            Diversion::Skip => {
                tracing::warn!(task = %task, error, topic = raw.topic, partition, offset = raw.offset, "skipping a record {what}");
                self.shared.metrics.add_skipped();
                Ok(())
            }
            Diversion::DeadLetter(topic) => {
                tracing::warn!(task = %task, error, topic = raw.topic, partition, offset = raw.offset, dead_letter_topic = topic, "sending a record {what} to the dead-letter topic");
                let mut headers = raw.headers.clone();
                headers.push(("eddy.error".to_owned(), error.as_bytes().to_vec()));
                headers.push(("eddy.topic".to_owned(), raw.topic.clone().into_bytes()));
                headers.push((
                    "eddy.partition".to_owned(),
                    partition.to_string().into_bytes(),
                ));
                headers.push((
                    "eddy.offset".to_owned(),
                    raw.offset.to_string().into_bytes(),
                ));
                let record = RawRecord {
                    topic: topic.clone(),
                    partition: None,
                    offset: -1,
                    key: raw.key.clone(),
                    value: raw.value.clone(),
                    // A record refused for its missing timestamp is dead-lettered at now.
                    timestamp: if raw.timestamp >= 0 {
                        raw.timestamp
                    } else {
                        wall_clock_ms()
                    },
                    headers,
                };
                self.send_all(std::slice::from_ref(&record))?;
                self.shared.metrics.add_dead_lettered();
                Ok(())
            }
        }
    }
}

/// An input message as the task graph takes it.
pub(super) fn raw_record(msg: &BorrowedMessage<'_>) -> RawRecord {
    RawRecord {
        topic: msg.topic().to_owned(),
        partition: Some(msg.partition()),
        offset: msg.offset(),
        key: msg.key().map(<[u8]>::to_vec),
        value: msg.payload().map(<[u8]>::to_vec),
        // A record without a timestamp gets -1: its source refuses it as having no event time.
        timestamp: msg.timestamp().to_millis().unwrap_or(-1),
        headers: msg
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}
