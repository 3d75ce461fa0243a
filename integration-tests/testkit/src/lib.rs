//! A real local Apache Kafka for Eddy's tests: starts it on demand, inspects topics, and
//! waits for conditions with a deadline.
//!
//! [`Kafka::shared`] makes sure a broker answers: it uses `EDDY_BOOTSTRAP_SERVERS` when set,
//! and otherwise runs `compose/local/kafka.sh start`, which reuses a running local broker or
//! starts one. When no broker can be had the error says why (and where the broker log is);
//! a test that needs Kafka fails, it is never skipped.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers as _, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

mod cluster;
mod services;
mod wait;

pub use services::{
    postgres_url, s3_endpoint, s3_environment, schema_registry_url, S3_ACCESS_KEY_ID, S3_BUCKET,
    S3_SECRET_ACCESS_KEY,
};

pub use cluster::{BrokerStop, OwnCluster};
pub use wait::{eventually, eventually_every, pace, POLL_INTERVAL};

/// How long a read or wait in the testkit may take before it fails.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(120);

/// Why the testkit could not do what a test asked.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// The local broker could not be started.
    #[error("cannot start the local Kafka with {script}: {reason}")]
    Start {
        /// The start script that was run.
        script: String,
        /// What went wrong, including the script's output.
        reason: String,
    },
    /// A local service (the schema registry, PostgreSQL) could not be started.
    #[error("cannot start the local {service} with {script}: {reason}")]
    ServiceStart {
        /// The service.
        service: &'static str,
        /// The start script that was run.
        script: String,
        /// What went wrong, including the script's output.
        reason: String,
    },
    /// A Kafka client call failed.
    #[error("{what}: {source}")]
    Kafka {
        /// What the testkit was doing.
        what: String,
        /// The client error.
        #[source]
        source: KafkaError,
    },
    /// A condition was not reached before its deadline.
    #[error("timed out after {after:?}: {what}")]
    Timeout {
        /// The condition that was awaited.
        what: String,
        /// How long the testkit waited.
        after: Duration,
    },
}

/// The first topic an admin request (`verb`: creating, deleting) failed for, as an error.
fn every_topic_done(
    results: Vec<rdkafka::admin::TopicResult>,
    verb: &str,
) -> Result<(), TestkitError> {
    match results.into_iter().find_map(Result::err) {
        Some((topic, code)) => Err(TestkitError::Kafka {
            what: format!("{verb} topic {topic}"),
            source: KafkaError::AdminOp(code),
        }),
        None => Ok(()),
    }
}

fn kafka_err(what: impl Into<String>) -> impl FnOnce(KafkaError) -> TestkitError {
    let what = what.into();
    move |source| TestkitError::Kafka { what, source }
}

/// Which records a reader sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Only records of committed transactions (and non-transactional ones).
    ReadCommitted,
    /// Every record written, including those of open and aborted transactions.
    ReadUncommitted,
}

impl Isolation {
    fn as_config(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        }
    }
}

/// A record read back from a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    /// Partition it was read from.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its key, if any.
    pub key: Option<Vec<u8>>,
    /// Its value, if any.
    pub value: Option<Vec<u8>>,
    /// Its headers.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl ReadRecord {
    /// The key as UTF-8 text (lossy), or an empty string.
    pub fn key_str(&self) -> String {
        String::from_utf8_lossy(self.key.as_deref().unwrap_or_default()).into_owned()
    }

    /// The value as UTF-8 text (lossy), or an empty string.
    pub fn value_str(&self) -> String {
        String::from_utf8_lossy(self.value.as_deref().unwrap_or_default()).into_owned()
    }
}

/// A running Kafka cluster reachable from the tests.
#[derive(Debug)]
pub struct Kafka {
    bootstrap_servers: String,
}

static SHARED: OnceLock<Result<Kafka, String>> = OnceLock::new();

/// The repository's root directory: the nearest ancestor of the running test's package (cargo
/// sets `CARGO_MANIFEST_DIR` when it runs a test) or of the working directory that holds
/// `compose/local/kafka.sh`.
///
/// Found at run time, not compile time: cargo reuses compiled test crates when the repository
/// is cloned to another path with the same target directory, and a compile-time path would
/// then point at the old clone.
pub fn repository_root() -> PathBuf {
    let starts = [
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
        std::env::current_dir().ok(),
    ];
    starts
        .into_iter()
        .flatten()
        .flat_map(|start| start.ancestors().map(PathBuf::from).collect::<Vec<_>>())
        .find(|dir| dir.join("compose/local/kafka.sh").is_file())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// Path of the repository's local Kafka script.
pub fn kafka_script() -> PathBuf {
    repository_root().join("compose/local/kafka.sh")
}

impl Kafka {
    /// The cluster shared by every test of this process, started on first use.
    ///
    /// # Errors
    /// Fails with the reason (and the broker log's path) when no broker can be started.
    pub fn shared() -> Result<&'static Kafka, TestkitError> {
        let result = SHARED.get_or_init(|| Kafka::start().map_err(|e| e.to_string()));
        result.as_ref().map_err(|reason| TestkitError::Start {
            script: kafka_script().display().to_string(),
            reason: reason.clone(),
        })
    }

    fn start() -> Result<Kafka, TestkitError> {
        if let Ok(servers) = std::env::var("EDDY_BOOTSTRAP_SERVERS") {
            let kafka = Kafka {
                bootstrap_servers: servers,
            };
            kafka.wait_until_answering(Duration::from_secs(30))?;
            return Ok(kafka);
        }
        let script = kafka_script();
        let output = Command::new("bash")
            .arg(&script)
            .arg("start")
            .output()
            .map_err(|e| TestkitError::Start {
                script: script.display().to_string(),
                reason: format!("could not run bash: {e}"),
            })?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(TestkitError::Start {
                script: script.display().to_string(),
                reason: format!(
                    "exit status {}\n{}{}",
                    output.status,
                    stdout,
                    String::from_utf8_lossy(&output.stderr)
                ),
            });
        }
        let servers = stdout.lines().last().unwrap_or("127.0.0.1:9092").trim();
        let kafka = Kafka {
            bootstrap_servers: servers.to_owned(),
        };
        kafka.wait_until_answering(Duration::from_secs(30))?;
        Ok(kafka)
    }

    /// A cluster at explicit bootstrap servers (for tests that start their own brokers).
    pub fn at(bootstrap_servers: impl Into<String>) -> Kafka {
        Kafka {
            bootstrap_servers: bootstrap_servers.into(),
        }
    }

    /// The `host:port` list to bootstrap clients from.
    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    /// Waits until the cluster answers a metadata request.
    ///
    /// # Errors
    /// Times out when no broker answers before `deadline`.
    pub fn wait_until_answering(&self, deadline: Duration) -> Result<(), TestkitError> {
        let consumer = self.metadata_client()?;
        let what = format!("Kafka at {} answering metadata", self.bootstrap_servers);
        eventually(&what, deadline, || {
            Ok(consumer
                .fetch_metadata(None, Duration::from_secs(2))
                .is_ok_and(|md| !md.brokers().is_empty()))
        })
    }

    /// A client for metadata and watermark requests.
    fn metadata_client(&self) -> Result<BaseConsumer, TestkitError> {
        self.config()
            .create()
            .map_err(kafka_err("creating a metadata client"))
    }

    /// A client configuration pointing at this cluster.
    pub fn config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        config
    }

    /// Creates a topic with `partitions` partitions and the cluster's default replication
    /// factor (1 on a single broker, 3 on the local script's clusters of three).
    ///
    /// # Errors
    /// Fails when the topic exists already or the broker refuses it.
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<(), TestkitError> {
        self.create_topic_with(name, partitions, &[])
    }

    /// Creates a topic as [`create_topic`](Self::create_topic) does, with topic-level
    /// `configs` (for example `max.message.bytes`).
    ///
    /// # Errors
    /// Fails when the topic exists already or the broker refuses it.
    pub fn create_topic_with(
        &self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> Result<(), TestkitError> {
        let admin: AdminClient<DefaultClientContext> = self
            .config()
            .create()
            .map_err(kafka_err("creating an admin client"))?;
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(-1));
        for (key, value) in configs {
            topic = topic.set(key, value);
        }
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = futures::executor::block_on(admin.create_topics([&topic], &options))
            .map_err(kafka_err(format!("creating topic {name}")))?;
        every_topic_done(results, "creating")?;
        self.wait_for_partitions(name, partitions)
    }

    /// Deletes `topic` and waits until the cluster no longer lists it.
    ///
    /// # Errors
    /// Fails when the broker refuses or the topic is still listed after the deadline.
    pub fn delete_topic(&self, topic: &str) -> Result<(), TestkitError> {
        let admin: AdminClient<DefaultClientContext> = self
            .config()
            .create()
            .map_err(kafka_err("creating an admin client"))?;
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = futures::executor::block_on(admin.delete_topics(&[topic], &options))
            .map_err(kafka_err(format!("deleting topic {topic}")))?;
        every_topic_done(results, "deleting")?;
        let consumer = self.metadata_client()?;
        let interval = Duration::from_millis(100);
        eventually_every(
            &format!("topic {topic} gone"),
            DEFAULT_DEADLINE,
            interval,
            || {
                let listed = consumer
                    .fetch_metadata(Some(topic), Duration::from_secs(5))
                    .map(|md| {
                        md.topics()
                            .iter()
                            .any(|t| t.name() == topic && t.error().is_none())
                    })
                    .unwrap_or(true);
                Ok(!listed)
            },
        )
    }

    fn wait_for_partitions(&self, topic: &str, partitions: i32) -> Result<(), TestkitError> {
        let consumer = self.metadata_client()?;
        let what = format!("topic {topic} with {partitions} partitions having leaders");
        eventually(&what, DEFAULT_DEADLINE, || {
            let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5));
            Ok(metadata.is_ok_and(|md| {
                md.topics().iter().any(|t| {
                    t.name() == topic
                        && t.error().is_none()
                        && t.partitions().len() == partitions as usize
                        && t.partitions().iter().all(|p| p.leader() >= 0)
                })
            }))
        })
    }

    /// Names of the topics whose names start with `prefix`, sorted.
    ///
    /// # Errors
    /// Fails when the metadata request fails.
    pub fn topics_with_prefix(&self, prefix: &str) -> Result<Vec<String>, TestkitError> {
        let consumer = self.metadata_client()?;
        let md = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(kafka_err("metadata of all topics"))?;
        let mut names: Vec<String> = md
            .topics()
            .iter()
            .map(|t| t.name().to_owned())
            .filter(|name| name.starts_with(prefix))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Number of partitions of `topic`.
    ///
    /// # Errors
    /// Fails when the metadata request fails or the topic does not exist.
    pub fn partitions(&self, topic: &str) -> Result<i32, TestkitError> {
        let consumer = self.metadata_client()?;
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(kafka_err(format!("metadata of {topic}")))?;
        let count = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map(|t| t.partitions().len())
            .unwrap_or(0);
        i32::try_from(count).map_err(|_| TestkitError::Timeout {
            what: format!("partition count of {topic} fitting i32"),
            after: Duration::ZERO,
        })
    }

    /// Produces `(key, value)` records without a transaction, partitioned by key with
    /// murmur2 like Java producers, and waits until all are acknowledged.
    ///
    /// # Errors
    /// Fails when any record is not acknowledged.
    pub fn produce(
        &self,
        topic: &str,
        records: impl IntoIterator<Item = (Option<Vec<u8>>, Vec<u8>)>,
    ) -> Result<(), TestkitError> {
        self.produce_records(topic, records.into_iter().map(|(k, v)| (k, v, None)))
    }

    /// As [`produce`](Self::produce), with each record's timestamp (milliseconds since the
    /// epoch) given.
    ///
    /// # Errors
    /// Fails when any record is not acknowledged.
    pub fn produce_at(
        &self,
        topic: &str,
        records: impl IntoIterator<Item = (Option<Vec<u8>>, Vec<u8>, i64)>,
    ) -> Result<(), TestkitError> {
        self.produce_records(topic, records.into_iter().map(|(k, v, t)| (k, v, Some(t))))
    }

    /// Produces records with an optional timestamp each (librdkafka's creation time when
    /// `None`), waiting until all are acknowledged.
    fn produce_records(
        &self,
        topic: &str,
        records: impl IntoIterator<Item = (Option<Vec<u8>>, Vec<u8>, Option<i64>)>,
    ) -> Result<(), TestkitError> {
        self.producer()?.send_all(topic, records)
    }

    /// A producer kept for many batches, for loads paced faster than a producer starts
    /// (connecting and taking a producer id cost hundreds of milliseconds).
    ///
    /// # Errors
    /// Fails when the producer cannot be created.
    pub fn producer(&self) -> Result<KeptProducer, TestkitError> {
        let producer: BaseProducer = self
            .config()
            .set("partitioner", "murmur2_random")
            .set("linger.ms", "20")
            .set("enable.idempotence", "true")
            .create()
            .map_err(kafka_err("creating a producer"))?;
        Ok(KeptProducer { producer })
    }

    /// Produces `(key, value)` records in one committed transaction (so a commit marker
    /// follows them in every partition they reach), partitioned like [`produce`](Self::produce).
    ///
    /// # Errors
    /// Fails when the transaction cannot be committed.
    pub fn produce_transactional(
        &self,
        topic: &str,
        records: impl IntoIterator<Item = (Option<Vec<u8>>, Vec<u8>)>,
    ) -> Result<(), TestkitError> {
        let producer: BaseProducer = self
            .config()
            .set("partitioner", "murmur2_random")
            .set("transactional.id", unique_name("testkit-tx"))
            .create()
            .map_err(kafka_err("creating a transactional producer"))?;
        producer
            .init_transactions(DEFAULT_DEADLINE)
            .map_err(kafka_err("initialising transactions"))?;
        producer
            .begin_transaction()
            .map_err(kafka_err("beginning a transaction"))?;
        for (key, value) in records {
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).payload(&value);
            if let Some(k) = key.as_deref() {
                record = record.key(k);
            }
            send_waiting(&producer, record).map_err(kafka_err(format!("producing to {topic}")))?;
        }
        producer
            .commit_transaction(DEFAULT_DEADLINE)
            .map_err(kafka_err(format!("committing records to {topic}")))?;
        Ok(())
    }

    /// End offset of every partition of `topic` as seen with `isolation`: the high watermark
    /// for read_uncommitted, the last stable offset for read_committed. The two differ exactly
    /// while a transaction is open on the partition.
    ///
    /// # Errors
    /// Fails when the offsets cannot be listed.
    pub fn end_offsets(&self, topic: &str, isolation: Isolation) -> Result<Vec<i64>, TestkitError> {
        let consumer: BaseConsumer = self
            .config()
            .set("isolation.level", isolation.as_config())
            .create()
            .map_err(kafka_err("creating a consumer"))?;
        let partitions = self.partitions(topic)?;
        (0..partitions)
            .map(|p| {
                consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(10))
                    .map(|(_, high)| high)
                    .map_err(kafka_err(format!("end offset of {topic} [{p}]")))
            })
            .collect()
    }

    /// Committed offsets of consumer group `group` for every partition of `topic`
    /// (`None` where the group has committed nothing).
    ///
    /// # Errors
    /// Fails when the offsets cannot be fetched.
    pub fn committed_offsets(
        &self,
        group: &str,
        topic: &str,
    ) -> Result<Vec<Option<i64>>, TestkitError> {
        let consumer: BaseConsumer = self
            .config()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(kafka_err("creating a consumer"))?;
        let partitions = self.partitions(topic)?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let committed = consumer
            .committed_offsets(tpl, Duration::from_secs(10))
            .map_err(kafka_err(format!(
                "committed offsets of {group} on {topic}"
            )))?;
        Ok((0..partitions)
            .map(
                |p| match committed.find_partition(topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => Some(o),
                    _ => None,
                },
            )
            .collect())
    }

    /// Reads every record of `topic` visible with `isolation`, from the beginning up to the
    /// end of each partition as it stands when the read reaches it. Records come back in
    /// partition order, each partition in offset order.
    ///
    /// # Errors
    /// Fails when the read does not reach the end of every partition before the deadline.
    pub fn read_all(
        &self,
        topic: &str,
        isolation: Isolation,
    ) -> Result<Vec<ReadRecord>, TestkitError> {
        let partitions = self.partitions(topic)?;
        let ends = self.end_offsets(topic, isolation)?;
        let consumer: BaseConsumer = self
            .config()
            .set("isolation.level", isolation.as_config())
            .set("group.id", unique_name("eddy-testkit-reader"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .create()
            .map_err(kafka_err("creating a consumer"))?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(kafka_err("building an assignment"))?;
        }
        consumer
            .assign(&tpl)
            .map_err(kafka_err(format!("assigning {topic}")))?;
        let mut by_partition: BTreeMap<i32, Vec<ReadRecord>> = BTreeMap::new();
        let mut done: Vec<bool> = ends.iter().map(|&end| end == 0).collect();
        let start = Instant::now();
        while done.iter().any(|d| !d) {
            if start.elapsed() > DEFAULT_DEADLINE {
                return Err(TestkitError::Timeout {
                    what: format!("reading {topic} to its end offsets {ends:?}"),
                    after: DEFAULT_DEADLINE,
                });
            }
            let Some(result) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            match result {
                Ok(msg) => {
                    let p = msg.partition();
                    let record = ReadRecord {
                        partition: p,
                        offset: msg.offset(),
                        key: msg.key().map(<[u8]>::to_vec),
                        value: msg.payload().map(<[u8]>::to_vec),
                        headers: msg
                            .headers()
                            .map(|h| {
                                h.iter()
                                    .map(|h| {
                                        (h.key.to_owned(), h.value.unwrap_or_default().to_vec())
                                    })
                                    .collect()
                            })
                            .unwrap_or_default(),
                    };
                    by_partition.entry(p).or_default().push(record);
                }
                Err(KafkaError::PartitionEOF(p)) => {
                    if let Some(d) = usize::try_from(p).ok().and_then(|i| done.get_mut(i)) {
                        let position = consumer
                            .position()
                            .ok()
                            .and_then(|tpl| tpl.find_partition(topic, p).map(|e| e.offset()));
                        let end = ends.get(p as usize).copied().unwrap_or(0);
                        if matches!(position, Some(Offset::Offset(o)) if o >= end) {
                            *d = true;
                        }
                    }
                }
                // A lost broker connection is a report; the client reconnects by itself.
                Err(KafkaError::MessageConsumption(_)) => {}
                Err(e) => return Err(kafka_err(format!("reading {topic}"))(e)),
            }
        }
        Ok(by_partition.into_values().flatten().collect())
    }
}

impl Kafka {
    /// Number of members consumer group `group` has now (0 once every instance left).
    ///
    /// # Errors
    /// Fails when the group list cannot be fetched.
    pub fn group_members(&self, group: &str) -> Result<usize, TestkitError> {
        let consumer: BaseConsumer = self
            .config()
            .create()
            .map_err(kafka_err("creating a consumer"))?;
        let groups = consumer
            .fetch_group_list(Some(group), Duration::from_secs(10))
            .map_err(kafka_err(format!("describing group {group}")))?;
        Ok(groups
            .groups()
            .iter()
            .filter(|g| g.name() == group)
            .map(|g| g.members().len())
            .sum())
    }

    /// A read_committed reader of every partition of `topic` from the beginning, to count
    /// committed records as they appear.
    ///
    /// # Errors
    /// Fails when the consumer cannot be created or assigned.
    pub fn tail(&self, topic: &str) -> Result<Tail, TestkitError> {
        let consumer: BaseConsumer = self
            .config()
            .set("isolation.level", "read_committed")
            .set("group.id", unique_name("eddy-testkit-tail"))
            .set("enable.auto.commit", "false")
            // Counts as records appear: an idle fetch waits 10 ms, not librdkafka's 500.
            .set("fetch.wait.max.ms", "10")
            .create()
            .map_err(kafka_err("creating a consumer"))?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..self.partitions(topic)? {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(kafka_err("building an assignment"))?;
        }
        consumer
            .assign(&tpl)
            .map_err(kafka_err(format!("assigning {topic}")))?;
        Ok(Tail { consumer, seen: 0 })
    }
}

/// An idempotent producer partitioning by key with murmur2, as Java producers do.
pub struct KeptProducer {
    producer: BaseProducer,
}

impl std::fmt::Debug for KeptProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptProducer").finish_non_exhaustive()
    }
}

impl KeptProducer {
    /// Produces records with an optional timestamp each (librdkafka's creation time when
    /// `None`) and waits until all are acknowledged.
    ///
    /// # Errors
    /// Fails when any record is not acknowledged.
    pub fn send_all(
        &self,
        topic: &str,
        records: impl IntoIterator<Item = (Option<Vec<u8>>, Vec<u8>, Option<i64>)>,
    ) -> Result<(), TestkitError> {
        for (key, value, timestamp) in records {
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic).payload(&value);
            if let Some(t) = timestamp {
                record = record.timestamp(t);
            }
            if let Some(k) = key.as_deref() {
                record = record.key(k);
            }
            send_waiting(&self.producer, record)
                .map_err(kafka_err(format!("producing to {topic}")))?;
        }
        self.producer
            .flush(DEFAULT_DEADLINE)
            .map_err(kafka_err(format!("flushing records to {topic}")))
    }
}

/// Counts the committed records of a topic as they appear.
pub struct Tail {
    consumer: BaseConsumer,
    seen: u64,
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail").field("seen", &self.seen).finish()
    }
}

impl Tail {
    /// Reads what is available for up to `wait` and returns the count so far.
    ///
    /// # Errors
    /// Fails on a consumer error.
    pub fn count(&mut self, wait: Duration) -> Result<u64, TestkitError> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.consumer.poll(left) {
                Some(Ok(_)) => self.seen += 1,
                // A lost broker connection is a report; the client reconnects by itself.
                Some(Err(KafkaError::MessageConsumption(_))) => {}
                Some(Err(e)) => return Err(kafka_err("tailing")(e)),
                None => return Ok(self.seen),
            }
            if Instant::now() >= deadline {
                return Ok(self.seen);
            }
        }
    }

    /// Waits until at least `target` records were seen, failing after `deadline`.
    ///
    /// # Errors
    /// [`TestkitError::Timeout`] naming the count reached.
    pub fn wait_for(&mut self, target: u64, deadline: Duration) -> Result<u64, TestkitError> {
        let start = Instant::now();
        while self.count(Duration::from_millis(200))? < target {
            if start.elapsed() > deadline {
                return Err(TestkitError::Timeout {
                    what: format!("{target} committed records (saw {})", self.seen),
                    after: deadline,
                });
            }
        }
        Ok(self.seen)
    }
}

/// Sends `record`, serving delivery reports while librdkafka's queue is full instead of
/// failing.
///
/// # Errors
/// Any send error other than a full queue.
pub fn send_waiting<K, P>(
    producer: &BaseProducer,
    mut record: BaseRecord<'_, K, P>,
) -> Result<(), KafkaError>
where
    K: rdkafka::message::ToBytes + ?Sized,
    P: rdkafka::message::ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((
                KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                back,
            )) => {
                record = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((e, _)) => return Err(e),
        }
    }
}

/// A name unique to this process and call, for topics, groups and application ids.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000)
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}
