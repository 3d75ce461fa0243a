//! The instance's global-table reader: before the stream threads start it reads every global
//! table's topic (all partitions) from the beginning to the end it had, then follows the
//! topics until shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::RuntimeError;
use crate::config::{EddyConfig, Guarantee};
use crate::state::GlobalStore;
use crate::topology::Topology;

/// How long one poll of the reader waits.
const POLL: Duration = Duration::from_millis(200);

/// How often loading checks whether every partition reached its end while records flow.
const REACHED_CHECK: Duration = Duration::from_millis(10);

/// A consumer of every global table's topic, with the stores it feeds.
pub(crate) struct GlobalReader {
    consumer: BaseConsumer,
    stores: HashMap<String, Vec<Arc<GlobalStore>>>,
    /// Records without a key (they cannot be looked up), counted for the log.
    keyless: u64,
}

fn kafka(what: String) -> impl FnOnce(rdkafka::error::KafkaError) -> RuntimeError {
    move |source| RuntimeError::Kafka { what, source }
}

impl GlobalReader {
    /// Reads every global table of `topology` from its topic's beginning up to the topic's
    /// end now; `None` when the topology has none.
    ///
    /// # Errors
    /// A topic is missing, or Kafka cannot be reached (retried by the caller).
    pub(crate) fn load(
        config: &EddyConfig,
        topology: &Topology,
        instance_id: &str,
        shutdown: &AtomicBool,
    ) -> Result<Option<Self>, RuntimeError> {
        if topology.globals.is_empty() {
            return Ok(None);
        }
        let client = format!("{}-{instance_id}-global", config.application.id);
        let isolation = match config.processing.guarantee {
            Guarantee::ExactlyOnce => "read_committed",
            Guarantee::AtLeastOnce => "read_uncommitted",
        };
        let consumer: BaseConsumer = config
            .kafka
            .consumer_config_with(
                &client,
                &[
                    // Assigned, never joined or committed to; assignment needs a group id.
                    ("group.id", client.as_str()),
                    ("enable.auto.commit", "false"),
                    ("isolation.level", isolation),
                ],
            )
            .create()
            .map_err(kafka("creating the global-table consumer".to_owned()))?;
        let mut stores: HashMap<String, Vec<Arc<GlobalStore>>> = HashMap::new();
        for global in &topology.globals {
            stores
                .entry(global.topic().to_owned())
                .or_default()
                .push(Arc::clone(global));
        }
        let mut assignment = TopicPartitionList::new();
        let mut ends = Vec::new();
        for (topic, tables) in &stores {
            let metadata = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .map_err(kafka(format!("reading the partitions of `{topic}`")))?;
            let partitions = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic && t.error().is_none())
                .map_or(0, |t| t.partitions().len());
            if partitions == 0 {
                return Err(RuntimeError::Plan(vec![format!(
                    "global table `{}` reads topic `{topic}`, which does not exist",
                    tables.first().map_or("", |t| t.name())
                )]));
            }
            for partition in 0..i32::try_from(partitions).unwrap_or(i32::MAX) {
                let (low, end) =
                    crate::kafka::watermarks(&consumer, topic, partition, Duration::from_secs(30))
                        .map_err(kafka(format!("reading the end of `{topic}` [{partition}]")))?;
                assignment
                    .add_partition_offset(topic, partition, Offset::Beginning)
                    .map_err(kafka(format!("assigning `{topic}` [{partition}]")))?;
                if end > low {
                    ends.push((topic.clone(), partition, end));
                }
            }
        }
        consumer
            .assign(&assignment)
            .map_err(kafka("assigning the global-table topics".to_owned()))?;
        let mut reader = GlobalReader {
            consumer,
            stores,
            keyless: 0,
        };
        let started = Instant::now();
        let mut records = 0_u64;
        let mut last_log = Instant::now();
        let mut loaded = reader.reached(&ends)?;
        let mut checked = Instant::now();
        while !loaded {
            if shutdown.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let applied = reader.step()?;
            if applied {
                records += 1;
            }
            // Reading positions is a round trip to librdkafka's main thread: not per record.
            if !applied || checked.elapsed() >= REACHED_CHECK {
                loaded = reader.reached(&ends)?;
                checked = Instant::now();
            }
            if last_log.elapsed() > Duration::from_secs(10) {
                last_log = Instant::now();
                tracing::info!(records, "loading the global tables");
            }
        }
        for tables in reader.stores.values() {
            for table in tables {
                tracing::info!(
                    store = table.name(),
                    topic = table.topic(),
                    keys = table.len(),
                    took = ?started.elapsed(),
                    "global table loaded"
                );
            }
        }
        Ok(Some(reader))
    }

    /// True when every partition's position reached its end in `ends`.
    fn reached(&self, ends: &[(String, i32, i64)]) -> Result<bool, RuntimeError> {
        let positions = self
            .consumer
            .position()
            .map_err(kafka("reading the global-table positions".to_owned()))?;
        Ok(ends.iter().all(|(topic, partition, end)| {
            crate::kafka::offset_in(&positions, topic, *partition).is_some_and(|at| at >= *end)
        }))
    }

    /// Polls once and applies what arrived; true when a record was applied.
    fn step(&mut self) -> Result<bool, RuntimeError> {
        match self.consumer.poll(POLL) {
            Some(Ok(msg)) => Ok(apply(&self.stores, &mut self.keyless, &msg)),
            Some(Err(e)) if crate::kafka::is_report(&e) => {
                tracing::debug!(error = %e, "global-table reader report");
                Ok(false)
            }
            Some(Err(e)) => Err(kafka("reading a global table's topic".to_owned())(e)),
            None => Ok(false),
        }
    }

    /// Follows the topics on a thread of its own until `shutdown` is set.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub(crate) fn spawn(
        mut self,
        shutdown: Arc<AtomicBool>,
    ) -> Result<JoinHandle<()>, RuntimeError> {
        std::thread::Builder::new()
            .name("eddy-global".to_owned())
            .spawn(move || {
                while !shutdown.load(Ordering::Relaxed) {
                    if let Err(e) = self.step() {
                        tracing::warn!(error = %e, "reading the global tables; trying again");
                        crate::backoff::pause_unless(&shutdown, Duration::from_secs(1));
                    }
                }
                if self.keyless > 0 {
                    tracing::warn!(
                        records = self.keyless,
                        "global-table records without a key were not applied"
                    );
                }
            })
            .map_err(|source| RuntimeError::Spawn {
                what: "global table",
                source,
            })
    }
}

/// Applies a record to the global stores of its topic; false for a record without a key.
fn apply(
    stores: &HashMap<String, Vec<Arc<GlobalStore>>>,
    keyless: &mut u64,
    msg: &BorrowedMessage<'_>,
) -> bool {
    let Some(key) = msg.key() else {
        if *keyless == 0 {
            tracing::warn!(
                topic = msg.topic(),
                partition = msg.partition(),
                offset = msg.offset(),
                "a global-table record without a key cannot be looked up; not applied"
            );
        }
        *keyless += 1;
        return false;
    };
    for store in stores.get(msg.topic()).into_iter().flatten() {
        store.apply(key, msg.payload());
    }
    true
}
