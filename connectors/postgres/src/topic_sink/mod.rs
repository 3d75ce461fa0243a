//! The exactly-once sink outside a topology: a consumer of an output topic (read_committed)
//! that writes each batch's rows and the partitions' next offsets in one PostgreSQL
//! transaction, fenced by a generation per partition.
//!
//! ```text
//!  partition assigned ──► take over: generation + 1, read next_offset; seek there
//!  records ───────────► rows buffered per batch (records below next_offset skipped)
//!  batch due ─────────► BEGIN; rows; UPDATE offsets SET next_offset WHERE generation = mine;
//!                       COMMIT — a row count of 0 means a newer owner took the partition:
//!                       ROLLBACK, and every partition is taken over again
//! ```
//!
//! A new owner's take-over waits for the old owner's open transaction (the offsets row is
//! locked by its UPDATE), so rows and offsets move together and an older owner can never
//! write after a newer one started.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use eddy::serde::Serde;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset};

use crate::connect::Tls;
use crate::error::PostgresError;
use crate::table::{Change, Table};

mod session;

use session::{Owned, Session};

/// The table of each (sink, topic, partition)'s next offset and owner generation.
pub const OFFSETS_TABLE: &str = "eddy_topic_offsets";

/// Turns a decoded record into its table change.
type Mapper<K, V> = Box<dyn Fn(&K, &V) -> Option<Change> + Send + Sync>;

/// What a [`TopicSink`] did until it stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicSinkReport {
    /// Records consumed and written (or mapped to nothing).
    pub records: u64,
    /// PostgreSQL transactions committed.
    pub batches: u64,
    /// Times a newer owner's generation refused a batch.
    pub fenced: u64,
}

/// A sink that consumes `topic` into a PostgreSQL table exactly once, with no prepared
/// transactions; see the [module](self). Instances with the same name share the topic's
/// partitions through a consumer group named `eddy-sink-<name>`.
pub struct TopicSink<K, V> {
    name: String,
    url: String,
    topic: String,
    table: Table,
    kafka: ClientConfig,
    key_serde: Box<dyn Serde<K>>,
    value_serde: Box<dyn Serde<V>>,
    map: Mapper<K, V>,
    tls: Tls,
    /// Records per batch at most.
    pub batch_records: usize,
    /// How long a batch collects records at most.
    pub batch_interval: Duration,
}

impl<K, V> std::fmt::Debug for TopicSink<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicSink")
            .field("name", &self.name)
            .field("topic", &self.topic)
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl<K: 'static, V: 'static> TopicSink<K, V> {
    /// A sink named `name` reading `topic` from the brokers `bootstrap_servers` into `table`
    /// at `url`, each record decoded by the serdes and mapped by `map`.
    ///
    /// # Errors
    /// When `url` is not a PostgreSQL URL.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        url: &str,
        topic: &str,
        bootstrap_servers: &str,
        table: Table,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        map: impl Fn(&K, &V) -> Option<Change> + Send + Sync + 'static,
    ) -> Result<Self, PostgresError> {
        crate::connect::check_url(name, url)?;
        let mut kafka = ClientConfig::new();
        kafka
            .set("bootstrap.servers", bootstrap_servers)
            .set("group.id", format!("eddy-sink-{name}"))
            .set("isolation.level", "read_committed")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false");
        Ok(TopicSink {
            name: name.to_owned(),
            url: url.to_owned(),
            topic: topic.to_owned(),
            table,
            kafka,
            key_serde: Box::new(key_serde),
            value_serde: Box::new(value_serde),
            map: Box::new(map),
            tls: Tls::default(),
            batch_records: 5000,
            batch_interval: Duration::from_millis(100),
        })
    }

    /// Checks the server's certificate with `tls` (see [`PostgresSink::with_tls`]).
    ///
    /// [`PostgresSink::with_tls`]: crate::PostgresSink::with_tls
    #[must_use]
    pub fn with_tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }

    /// Sets a librdkafka property of the consumer (security settings, for example).
    pub fn kafka_setting(mut self, key: &str, value: &str) -> Self {
        self.kafka.set(key, value);
        self
    }

    /// Consumes until `stop` is set, then returns what it did.
    ///
    /// # Errors
    /// A record that cannot be decoded or mapped (naming its topic, partition and offset), or
    /// a PostgreSQL or Kafka failure that is not transient. Transient failures (a lost
    /// connection, a newer owner's fence) are reported in the log and the sink resumes from
    /// PostgreSQL's offsets.
    pub fn run(&self, stop: &AtomicBool) -> Result<TopicSinkReport, PostgresError> {
        let consumer: BaseConsumer = self
            .kafka
            .create()
            .map_err(|source| self.kafka_error("creating the consumer", source))?;
        consumer
            .subscribe(&[&self.topic])
            .map_err(|source| self.kafka_error("subscribing", source))?;
        let mut report = TopicSinkReport::default();
        let mut session: Option<Session> = None;
        let mut owned: BTreeMap<i32, Owned> = BTreeMap::new();
        let mut batch: Vec<Change> = Vec::new();
        let mut advanced: BTreeMap<i32, i64> = BTreeMap::new();
        let mut batch_started = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let result = self.step(
                &consumer,
                &mut session,
                &mut owned,
                &mut batch,
                &mut advanced,
                &mut batch_started,
                &mut report,
            );
            if let Err(e) = result {
                if !e.is_transient() {
                    return Err(e);
                }
                tracing::warn!(sink = self.name, error = %e, "starting over from PostgreSQL's offsets");
                if matches!(e, PostgresError::Fenced { .. }) {
                    report.fenced += 1;
                }
                // Everything not committed is read again from PostgreSQL's offsets.
                session = None;
                owned.clear();
                batch.clear();
                advanced.clear();
                eddy_pause(Duration::from_millis(200), stop);
            }
        }
        Ok(report)
    }

    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        consumer: &BaseConsumer,
        session: &mut Option<Session>,
        owned: &mut BTreeMap<i32, Owned>,
        batch: &mut Vec<Change>,
        advanced: &mut BTreeMap<i32, i64>,
        batch_started: &mut Instant,
        report: &mut TopicSinkReport,
    ) -> Result<(), PostgresError> {
        if session.is_none() {
            *session = Some(Session::open(self)?);
        }
        let Some(session) = session.as_mut() else {
            return Ok(());
        };
        self.follow_assignment(consumer, session, owned, batch, advanced)?;
        // Takes what is at hand (up to a batch), waiting only for the first record: one
        // assignment check per step, not per record.
        let mut wait = Duration::from_millis(20);
        for _ in 0..self.batch_records {
            let Some(message) = consumer.poll(wait) else {
                break;
            };
            wait = Duration::ZERO;
            let message = message.map_err(|source| self.kafka_error("consuming", source))?;
            let partition = message.partition();
            let offset = message.offset();
            // Records below PostgreSQL's offset were written before (the seek is on its way).
            if owned.get(&partition).is_some_and(|o| offset >= o.next) {
                let record_error = |reason: String| PostgresError::Record {
                    sink: self.name.clone(),
                    topic: self.topic.clone(),
                    partition,
                    offset,
                    reason,
                };
                let key = self
                    .key_serde
                    .deserialize(message.key())
                    .map_err(|e| record_error(format!("its key: {e}")))?;
                let value = self
                    .value_serde
                    .deserialize(message.payload())
                    .map_err(|e| record_error(format!("its value: {e}")))?;
                if let Some(change) = (self.map)(&key, &value) {
                    self.table
                        .check(&change)
                        .map_err(|reason| record_error(format!("maps to {reason}")))?;
                    batch.push(change);
                }
                if advanced.is_empty() {
                    *batch_started = Instant::now();
                }
                advanced.insert(partition, offset + 1);
                report.records += 1;
            }
            if batch.len() >= self.batch_records {
                break;
            }
        }
        let due = !advanced.is_empty()
            && (batch.len() >= self.batch_records
                || batch_started.elapsed() >= self.batch_interval);
        if due {
            session.write(self, owned, batch, advanced)?;
            for (partition, next) in std::mem::take(advanced) {
                if let Some(own) = owned.get_mut(&partition) {
                    own.next = next;
                }
            }
            batch.clear();
            report.batches += 1;
        }
        Ok(())
    }

    /// Takes over newly assigned partitions (raising their generation, seeking to their
    /// offset) and forgets revoked ones (dropping the batch, which held their records).
    fn follow_assignment(
        &self,
        consumer: &BaseConsumer,
        session: &mut Session,
        owned: &mut BTreeMap<i32, Owned>,
        batch: &mut Vec<Change>,
        advanced: &mut BTreeMap<i32, i64>,
    ) -> Result<(), PostgresError> {
        let assignment = consumer
            .assignment()
            .map_err(|source| self.kafka_error("reading the assignment", source))?;
        let now: Vec<i32> = assignment
            .elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect();
        if owned.keys().any(|p| !now.contains(p)) {
            // The batch may hold records of a revoked partition: read them again instead.
            let kept: Vec<i32> = now
                .iter()
                .copied()
                .filter(|p| owned.contains_key(p))
                .collect();
            owned.retain(|p, _| kept.contains(p));
            for (partition, own) in owned.iter() {
                self.seek(consumer, *partition, own.next);
            }
            batch.clear();
            advanced.clear();
        }
        for partition in now {
            if owned.contains_key(&partition) {
                continue;
            }
            let own = session.take_over(self, partition)?;
            tracing::info!(
                sink = self.name,
                topic = self.topic,
                partition,
                generation = own.generation,
                next = own.next,
                "took the partition over"
            );
            self.seek(consumer, partition, own.next);
            owned.insert(partition, own);
        }
        Ok(())
    }

    fn seek(&self, consumer: &BaseConsumer, partition: i32, next: i64) {
        let at = if next > 0 {
            Offset::Offset(next)
        } else {
            Offset::Beginning
        };
        if let Err(e) = consumer.seek(&self.topic, partition, at, Duration::from_secs(5)) {
            // Records below the offset are skipped one by one meanwhile.
            tracing::debug!(sink = self.name, partition, error = %e, "seek failed");
        }
    }

    fn kafka_error(&self, what: &str, source: rdkafka::error::KafkaError) -> PostgresError {
        PostgresError::Kafka {
            sink: self.name.clone(),
            what: what.to_owned(),
            source: Box::new(source),
        }
    }
}

/// Waits up to `pause` unless `stop` is set (checked every 10 ms).
fn eddy_pause(pause: Duration, stop: &AtomicBool) {
    let until = Instant::now() + pause;
    while Instant::now() < until && !stop.load(Ordering::Relaxed) {
        std::thread::park_timeout(Duration::from_millis(10));
    }
}
