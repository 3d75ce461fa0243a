//! A stream thread's producer of outputs, changelog and repartition records: under
//! exactly-once the one component that owns every Kafka transaction call of the thread, under
//! at-least-once an idempotent producer whose "commit" is a flush.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::delivery::{
    is_deterministic, DeliveredOffsets, DeliveryContext, DeliveryStats, RecordOrigin,
    RejectedRecord,
};
use super::{classify, KafkaSettings};
use crate::backoff::Backoff;
use crate::ErrorAction;

mod transaction;

/// A failed transactional operation, with the action the runtime must take.
#[derive(Debug, thiserror::Error)]
#[error(
    "{operation} failed for transactional id `{transactional_id}` (action: {action}): {source}{}",
    rejected.as_ref().map(|r| format!(": {r}")).unwrap_or_default()
)]
pub struct ProducerError {
    /// The operation that failed (`init`, `begin`, `send`, `send_offsets`, `commit`, `abort`).
    pub operation: &'static str,
    /// The producer's transactional id.
    pub transactional_id: String,
    /// What the runtime must do about it.
    pub action: ErrorAction,
    /// The underlying Kafka client error.
    #[source]
    pub source: Box<KafkaError>,
    /// The record every retry would have refused again, when that is why it failed; the
    /// action is then [`ErrorAction::Fatal`].
    pub rejected: Option<Box<RejectedRecord>>,
}

impl ProducerError {
    /// The broker's or librdkafka's error code, if the error carries one.
    fn code(&self) -> Option<RDKafkaErrorCode> {
        match self.source.as_ref() {
            KafkaError::Transaction(rd) => Some(rd.code()),
            other => other.rdkafka_error_code(),
        }
    }

    /// True when the instance must close its tasks and rejoin (fenced, or it lost its group
    /// generation).
    pub fn is_fenced(&self) -> bool {
        self.action == ErrorAction::Rejoin
    }

    /// True when another producer registered the same transactional id after this one (or
    /// the broker aborted this producer's timed-out transaction, which bumps its epoch).
    pub fn is_producer_fenced(&self) -> bool {
        matches!(
            self.code(),
            Some(
                RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
                    | RDKafkaErrorCode::Fenced
            )
        )
    }

    /// True when the group coordinator refused the transaction's offsets because the
    /// consumer's group generation moved on (a rebalance of the classic protocol under way):
    /// the producer itself is sound, and the transaction only needs aborting.
    pub fn is_generation_refused(&self) -> bool {
        matches!(
            self.code(),
            Some(RDKafkaErrorCode::IllegalGeneration | RDKafkaErrorCode::RebalanceInProgress)
        )
    }
}

/// One record to send inside the open transaction.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingRecord<'a> {
    /// Destination topic.
    pub topic: &'a str,
    /// Destination partition; `None` lets the producer's partitioner (murmur2) pick by key.
    pub partition: Option<i32>,
    /// Record key.
    pub key: Option<&'a [u8]>,
    /// Record value; `None` is a tombstone.
    pub value: Option<&'a [u8]>,
    /// Record timestamp in milliseconds since the epoch.
    pub timestamp: Option<i64>,
    /// Record headers.
    pub headers: &'a [(String, Vec<u8>)],
}

/// A stream thread's producer. Exactly-once ([`new`](Self::new)): transactional, the single
/// owner of `begin`, `send_offsets`, `commit` and `abort` for the thread. At-least-once
/// ([`at_least_once`](Self::at_least_once)): no transactions; `commit` flushes.
///
/// All calls block (librdkafka's transaction API is synchronous); call them from a stream
/// thread or `spawn_blocking`, never from an async worker.
pub struct OutputProducer {
    /// Shared with the helper thread of a transaction call in progress (see
    /// [`super::bounded`]).
    producer: Arc<BaseProducer<DeliveryContext>>,
    /// Waits for the producer's delivery reports.
    drainer: super::Drainer<DeliveryContext>,
    transactional_id: String,
    timeout: Duration,
    in_transaction: bool,
    stats: Arc<DeliveryStats>,
    /// False for an at-least-once producer: no transactions, commit means flush.
    transactional: bool,
    /// Failed deliveries counted when the current batch began.
    failed_at_begin: u64,
    /// The input records of the open transaction that outputs were sent for, in order; a
    /// record's delivery opaque is its origin's index plus one.
    origins: Vec<RecordOrigin>,
    /// The opaque of records sent now (0: no origin).
    current_origin: usize,
    /// The origin named last, added to `origins` when a record is sent for it.
    pending_origin: Option<RecordOrigin>,
    /// Set when a transaction call overran its deadline: librdkafka may still be inside
    /// it, so every later transaction call fails at once and the owner replaces the
    /// producer.
    wedged: bool,
    /// Records were queued since the last kick or drain: they may be sitting out
    /// `linger.ms`.
    lingering: bool,
}

impl std::fmt::Debug for OutputProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputProducer")
            .field("transactional_id", &self.transactional_id)
            .field("in_transaction", &self.in_transaction)
            .finish()
    }
}

impl OutputProducer {
    /// Creates the producer and registers its transactional id with the coordinator
    /// (`init_transactions`), which fences any older producer with the same id and aborts
    /// its open transaction.
    ///
    /// # Errors
    /// Fails when the client cannot be created or the coordinator does not answer in time.
    pub fn new(settings: &KafkaSettings, transactional_id: &str) -> Result<Self, ProducerError> {
        let stats = Arc::new(DeliveryStats::default());
        let context = DeliveryContext {
            stats: Arc::clone(&stats),
        };
        let err = |source| ProducerError {
            operation: "init",
            transactional_id: transactional_id.to_owned(),
            action: ErrorAction::Fatal,
            source: Box::new(source),
            rejected: None,
        };
        let producer: BaseProducer<DeliveryContext> = settings
            .transactional_producer_config(transactional_id)
            .create_with_context(context)
            .map_err(err)?;
        let this = Self::with_producer(producer, transactional_id, settings, stats, true)?;
        // On a fresh or restarting cluster the coordinator answers "not coordinator", "load in
        // progress" or not at all for a while; librdkafka allows calling init again after a
        // retriable error.
        let mut attempts = Backoff::fixed(Duration::from_millis(200)).start(this.timeout);
        loop {
            match this.producer.init_transactions(this.timeout) {
                Ok(()) => return Ok(this),
                Err(e) => {
                    let err = this.error("init", e);
                    if err.action != ErrorAction::Retry || attempts.expired() {
                        return Err(err);
                    }
                    tracing::warn!(error = %err, "retrying init_transactions");
                    if !attempts.wait() {
                        return Err(err);
                    }
                }
            }
        }
    }

    /// Creates an idempotent producer without transactions, for at-least-once processing:
    /// `begin` and `send_offsets` do nothing, `commit` waits until every record is
    /// acknowledged and fails if one was not, and `abort` drops what is still queued.
    ///
    /// # Errors
    /// Fails when the client cannot be created.
    pub fn at_least_once(settings: &KafkaSettings, client_id: &str) -> Result<Self, ProducerError> {
        let stats = Arc::new(DeliveryStats::default());
        let context = DeliveryContext {
            stats: Arc::clone(&stats),
        };
        let producer: BaseProducer<DeliveryContext> = settings
            .idempotent_producer_config(client_id)
            .create_with_context(context)
            .map_err(|source| ProducerError {
                operation: "init",
                transactional_id: client_id.to_owned(),
                action: ErrorAction::Fatal,
                source: Box::new(source),
                rejected: None,
            })?;
        Self::with_producer(producer, client_id, settings, stats, false)
    }

    fn with_producer(
        producer: BaseProducer<DeliveryContext>,
        id: &str,
        settings: &KafkaSettings,
        stats: Arc<DeliveryStats>,
        transactional: bool,
    ) -> Result<Self, ProducerError> {
        let producer = Arc::new(producer);
        let drainer = super::Drainer::new(&producer).map_err(|source| ProducerError {
            operation: "init",
            transactional_id: id.to_owned(),
            action: ErrorAction::Fatal,
            source: Box::new(source),
            rejected: None,
        })?;
        Ok(OutputProducer {
            producer,
            drainer,
            wedged: false,
            lingering: false,
            transactional_id: id.to_owned(),
            timeout: settings.transaction_timeout,
            in_transaction: false,
            stats,
            transactional,
            failed_at_begin: 0,
            origins: Vec::new(),
            current_origin: 0,
            pending_origin: None,
        })
    }

    /// True for a transactional (exactly-once) producer.
    pub fn is_transactional(&self) -> bool {
        self.transactional
    }

    /// Takes the highest acknowledged offset per topic partition since the last call.
    /// After a successful [`commit`](Self::commit) it covers every record of the
    /// transaction.
    pub fn take_delivered_offsets(&self) -> DeliveredOffsets {
        self.stats
            .offsets
            .lock()
            .map(|mut o| std::mem::take(&mut *o))
            .unwrap_or_default()
    }

    /// The transactional id this producer registered.
    pub fn transactional_id(&self) -> &str {
        &self.transactional_id
    }

    /// True between [`begin`](Self::begin) and the matching commit or abort.
    pub fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    /// Number of records acknowledged by the brokers since creation.
    pub fn delivered(&self) -> u64 {
        self.stats.delivered.load(Ordering::Relaxed)
    }

    /// Names the input record that the records sent from now on are produced for (`None`:
    /// records of no input record, such as changelog records), so that a record the brokers
    /// refuse can be traced back to it.
    pub fn set_origin(&mut self, origin: Option<RecordOrigin>) {
        self.current_origin = 0;
        self.pending_origin = origin;
    }

    /// Sends one record in the open transaction. When librdkafka's local queue is full this
    /// serves delivery reports until there is room, so a burst never drops a record.
    ///
    /// # Errors
    /// Fails when the record cannot be queued; the error's action says whether to abort.
    pub fn send(&mut self, record: OutgoingRecord<'_>) -> Result<(), ProducerError> {
        if let Some(origin) = self.pending_origin.take() {
            self.origins.push(origin);
            self.current_origin = self.origins.len();
        }
        loop {
            let mut base: BaseRecord<'_, [u8], [u8], usize> =
                BaseRecord::with_opaque_to(record.topic, self.current_origin);
            if let Some(p) = record.partition {
                base = base.partition(p);
            }
            if let Some(k) = record.key {
                base = base.key(k);
            }
            if let Some(v) = record.value {
                base = base.payload(v);
            }
            if let Some(ts) = record.timestamp {
                base = base.timestamp(ts);
            }
            if !record.headers.is_empty() {
                let mut headers = OwnedHeaders::new_with_capacity(record.headers.len());
                for (key, value) in record.headers {
                    headers = headers.insert(Header {
                        key,
                        value: Some(value),
                    });
                }
                base = base.headers(headers);
            }
            match self.producer.send(base) {
                Ok(()) => {
                    self.lingering = true;
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.drainer.serve_for(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    let mut err = self.error("send", e);
                    if let Some(code) = err
                        .source
                        .rdkafka_error_code()
                        .filter(|c| is_deterministic(*c))
                    {
                        err.action = ErrorAction::Fatal;
                        err.rejected = Some(Box::new(RejectedRecord {
                            topic: record.topic.to_owned(),
                            bytes: record.key.map_or(0, <[u8]>::len)
                                + record.value.map_or(0, <[u8]>::len),
                            code,
                            origin: self.origin_of(self.current_origin),
                            limit: None,
                        }));
                    }
                    return Err(err);
                }
            }
        }
    }

    /// Waits until every record sent so far is acknowledged by the brokers (or failed),
    /// without ending the transaction.
    ///
    /// # Errors
    /// Fails when the records are not acknowledged within the transaction timeout.
    pub fn flush(&mut self) -> Result<(), ProducerError> {
        self.drain().map_err(|e| self.error("flush", e))
    }

    /// Waits for every delivery report (see [`super::Drainer`]).
    fn drain(&mut self) -> Result<(), KafkaError> {
        self.lingering = false;
        self.drainer.drain(self.timeout)
    }

    /// Has the records queued since the last call sent now instead of after `linger.ms`,
    /// without waiting for anything: for a thread about to wait for input, whose outputs
    /// then gain nothing from lingering. (Under a backlog a thread never waits, and batches
    /// fill as `linger.ms` allows.) Best effort: a broker thread that wakes only after the
    /// kick's millisecond leaves the records to their linger (see [`super::Drainer::kick`]).
    pub fn send_lingering(&mut self) {
        if std::mem::take(&mut self.lingering) {
            self.drainer.kick();
        }
    }

    /// Serves delivery reports, waiting up to `timeout` for one.
    pub fn poll(&self, timeout: Duration) {
        self.drainer.serve_for(timeout);
    }

    /// The error of `operation`. When a record of the transaction was refused for good, that
    /// is what made the operation fail (librdkafka fails the rest of an abortable
    /// transaction), and the error is fatal: reprocessing would produce the record again.
    fn error(&self, operation: &'static str, source: KafkaError) -> ProducerError {
        let rejected = self.take_rejected();
        ProducerError {
            operation,
            transactional_id: self.transactional_id.clone(),
            action: if rejected.is_some() {
                ErrorAction::Fatal
            } else {
                classify(&source)
            },
            source: Box::new(source),
            rejected,
        }
    }

    /// The record of the transaction that was refused for good, if one was, taken once.
    /// Its delivery report may arrive after the error it caused: after an abort (which serves
    /// every report) this says whether reprocessing can ever succeed.
    ///
    /// A record that failed because the brokers did not know its topic counts when the
    /// brokers confirm, asked now, that the topic does not exist (deleted under the app):
    /// every retry would meet it again. Otherwise (the topic is there, or the question found
    /// no answer) the failure was passing.
    pub fn take_rejected(&self) -> Option<Box<RejectedRecord>> {
        let rejection = self
            .stats
            .worst_rejection
            .lock()
            .ok()
            .and_then(|mut r| r.take())
            .or_else(|| self.confirmed_missing_topic());
        rejection.map(|(mut rejected, opaque)| {
            rejected.origin = self.origin_of(opaque);
            Box::new(rejected)
        })
    }

    /// The record that failed for an unknown topic, when the brokers confirm the topic is
    /// missing in two answers (each from whichever broker librdkafka asks, so one broker a
    /// new topic has not reached yet does not decide); taken once.
    fn confirmed_missing_topic(&self) -> Option<(RejectedRecord, usize)> {
        let suspect = self.stats.unknown_topic.lock().ok()?.take()?;
        let topic = suspect.0.topic.as_str();
        let missing = || match self
            .producer
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(5))
        {
            Ok(metadata) => metadata.topics().iter().any(|t| {
                t.name() == topic
                    && t.error().map(RDKafkaErrorCode::from)
                        == Some(RDKafkaErrorCode::UnknownTopicOrPartition)
            }),
            Err(e) => {
                tracing::warn!(topic, error = %e, "cannot ask the brokers whether a topic exists");
                false
            }
        };
        (missing() && missing()).then_some(suspect)
    }

    /// The origin a delivery opaque stands for.
    fn origin_of(&self, opaque: usize) -> Option<RecordOrigin> {
        opaque
            .checked_sub(1)
            .and_then(|i| self.origins.get(i))
            .cloned()
    }
}
