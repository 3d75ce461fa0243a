//! The life of an output producer's transaction: begin, the offsets, commit (with the
//! offsets' and the records' waits overlapped), abort, and the deadline on every call.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer, PurgeConfig};
use rdkafka::TopicPartitionList;

use super::super::delivery::DeliveryContext;
use super::{OutputProducer, ProducerError};
use crate::ErrorAction;

/// The call that puts `offsets` into the open transaction (AddOffsetsToTxn, then
/// TxnOffsetCommit), for a helper thread of [`crate::kafka::bounded`].
fn offsets_call(
    offsets: &TopicPartitionList,
    group: ConsumerGroupMetadata,
    timeout: Duration,
) -> impl FnOnce(&BaseProducer<DeliveryContext>) -> KafkaResult<()> + Send + 'static {
    let offsets = offsets.clone();
    move |p| p.send_offsets_to_transaction(&offsets, &group, timeout)
}

impl OutputProducer {
    /// Opens a transaction.
    ///
    /// # Errors
    /// Fails when a transaction is already open or the producer was fenced.
    pub fn begin(&mut self) -> Result<(), ProducerError> {
        self.failed_at_begin = self.stats.failed.load(Ordering::Relaxed);
        self.origins.clear();
        self.current_origin = 0;
        self.pending_origin = None;
        if let Ok(mut rejection) = self.stats.worst_rejection.lock() {
            *rejection = None;
        }
        if let Ok(mut suspect) = self.stats.unknown_topic.lock() {
            *suspect = None;
        }
        if !self.transactional {
            self.in_transaction = true;
            return Ok(());
        }
        self.producer
            .begin_transaction()
            .map_err(|e| self.error("begin", e))?;
        self.in_transaction = true;
        Ok(())
    }

    /// Adds the consumer's next positions to the open transaction, so they commit atomically
    /// with the records sent in it.
    ///
    /// # Errors
    /// Fails when the group coordinator rejects the offsets (for example after a rebalance).
    pub fn send_offsets(
        &mut self,
        offsets: &TopicPartitionList,
        group: ConsumerGroupMetadata,
    ) -> Result<(), ProducerError> {
        if !self.transactional {
            return Ok(());
        }
        let call = offsets_call(offsets, group, self.timeout);
        self.bounded("send_offsets", call)
    }

    /// Runs transaction call `operation` with a deadline (see [`crate::kafka::bounded`]); a call that
    /// overruns wedges the producer and fails with a fencing error, so the owner starts over
    /// with a new producer, whose registration fences this one.
    fn bounded(
        &mut self,
        operation: &'static str,
        call: impl FnOnce(&BaseProducer<DeliveryContext>) -> KafkaResult<()> + Send + 'static,
    ) -> Result<(), ProducerError> {
        if self.wedged {
            return Err(self.wedged_error(operation));
        }
        let result = super::super::bounded::run(&self.producer, self.timeout, call);
        self.settle(operation, result)
    }

    /// The outcome of transaction call `operation`: an overrun wedges the producer.
    fn settle(
        &mut self,
        operation: &'static str,
        result: Result<(), Option<KafkaError>>,
    ) -> Result<(), ProducerError> {
        match result {
            Ok(()) => Ok(()),
            Err(Some(e)) => Err(self.error(operation, e)),
            Err(None) => {
                tracing::error!(transactional_id = %self.transactional_id, operation, "a transaction call did not return in time; giving this producer up");
                self.wedged = true;
                Err(self.wedged_error(operation))
            }
        }
    }

    fn wedged_error(&self, operation: &'static str) -> ProducerError {
        ProducerError {
            operation,
            transactional_id: self.transactional_id.clone(),
            action: ErrorAction::Rejoin,
            source: Box::new(super::super::bounded::stuck()),
            rejected: None,
        }
    }

    /// Flushes and commits the open transaction.
    ///
    /// # Errors
    /// Fails when a record could not be delivered or the coordinator refuses the commit; the
    /// error's action says whether to abort and reprocess, rejoin or stop.
    pub fn commit(&mut self) -> Result<(), ProducerError> {
        if !self.transactional {
            return match self.flush_at_least_once() {
                Ok(()) => {
                    self.in_transaction = false;
                    Ok(())
                }
                Err(e) => Err(self.commit_failed(e)),
            };
        }
        // Drained first, `commit_transaction`'s own flush finds nothing to wait for.
        match self.drain() {
            Ok(()) => self.end_transaction(),
            Err(e) => Err(self.commit_failed(e)),
        }
    }

    /// Puts the consumer's next positions `offsets` into the open transaction and commits
    /// it, as [`send_offsets`](Self::send_offsets) then [`commit`](Self::commit) would, but
    /// with the two waits overlapped: the offsets go to the coordinators (AddOffsetsToTxn,
    /// then TxnOffsetCommit: two round trips) on a helper thread while this one has the
    /// records sent and waits for their acknowledgements. The transaction ends only once
    /// both are done.
    ///
    /// # Errors
    /// As `send_offsets` and `commit`. When the offsets fail the error never asks for a
    /// retry: a retried commit would end the transaction without them.
    pub fn commit_with_offsets(
        &mut self,
        offsets: &TopicPartitionList,
        group: ConsumerGroupMetadata,
    ) -> Result<(), ProducerError> {
        if !self.transactional {
            return self.commit();
        }
        if self.wedged {
            return Err(self.wedged_error("send_offsets"));
        }
        let call = offsets_call(offsets, group, self.timeout);
        let pending = super::super::bounded::start(&self.producer, self.timeout, call);
        // Even when the records fail, the offsets call is waited for: no other transaction
        // call (the abort that follows) may overlap it.
        let drained = self.drain();
        let joined = match pending {
            Ok(pending) => pending.wait(),
            Err(e) => Err(Some(e)),
        };
        if let Err(mut e) = self.settle("send_offsets", joined) {
            if e.action == ErrorAction::Retry {
                e.action = ErrorAction::AbortTransaction;
            }
            return Err(e);
        }
        match drained {
            Ok(()) => self.end_transaction(),
            Err(e) => Err(self.commit_failed(e)),
        }
    }

    /// Ends the open transaction once its records are acknowledged (EndTxn).
    fn end_transaction(&mut self) -> Result<(), ProducerError> {
        let timeout = self.timeout;
        self.bounded("commit", move |p| p.commit_transaction(timeout))
            .map(|()| self.in_transaction = false)
            .inspect_err(|_| self.log_first_failure())
    }

    /// The error of a commit whose records were not all acknowledged.
    fn commit_failed(&self, e: KafkaError) -> ProducerError {
        let err = self.error("commit", e);
        self.log_first_failure();
        err
    }

    /// Logs the first failed delivery of the transaction, which explains a failed commit.
    fn log_first_failure(&self) {
        if let Ok(first) = self.stats.first_failure.lock() {
            if let Some(failure) = first.as_ref() {
                tracing::warn!(transactional_id = %self.transactional_id, "{failure}");
            }
        }
    }

    /// Aborts the open transaction: nothing sent in it becomes visible to read_committed
    /// consumers and its offsets are not committed.
    ///
    /// # Errors
    /// Fails when the producer is fenced or in a fatal state.
    pub fn abort(&mut self) -> Result<(), ProducerError> {
        // librdkafka waits for every outstanding delivery report before aborting, and a
        // BaseProducer only serves them when polled: drop what is still queued, then serve
        // the (purged) reports.
        self.producer
            .purge(PurgeConfig::default().queue().inflight());
        self.drain().map_err(|e| self.error("abort", e))?;
        if self.transactional {
            let timeout = self.timeout;
            self.bounded("abort", move |p| p.abort_transaction(timeout))?;
        }
        self.in_transaction = false;
        Ok(())
    }

    /// At-least-once "commit": every record acknowledged, none failed since `begin`.
    fn flush_at_least_once(&mut self) -> Result<(), KafkaError> {
        self.drain()?;
        if self.stats.failed.load(Ordering::Relaxed) > self.failed_at_begin {
            // A lost output must not let the input offsets commit: the runtime reprocesses.
            return Err(KafkaError::MessageProduction(RDKafkaErrorCode::Fail));
        }
        Ok(())
    }
}
