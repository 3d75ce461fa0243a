//! App configuration: built-in defaults, a TOML file, `EDDY__SECTION__KEY` environment
//! variables and command-line flags, layered by the `config` crate and validated key by key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::kafka::KafkaSettings;
use crate::snapshot::{S3Settings, StoreLocation};

pub(crate) mod budget;
mod cli;
mod fields;
mod loader;
mod schema;

pub use cli::ConfigArgs;
pub use loader::ConfigLoader;
pub use schema::{markdown_table, setting, Kind, Setting, SETTINGS, TRANSACTION_TIMEOUT_MS};

/// The consumer group protocol the stream threads join with (`processing.group_protocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupProtocol {
    /// Chosen at start from what the brokers offer: [`Consumer`](Self::Consumer) where
    /// they offer it with a session timeout no longer than `processing.session_timeout_ms`
    /// and members are not static (or the topology reads co-partitioned topics together),
    /// else
    /// [`Classic`](Self::Classic). The runtime resolves it before any stream thread starts.
    Auto,
    /// The classic protocol with librdkafka's client-side cooperative-sticky assignor.
    Classic,
    /// KIP-848's consumer protocol with the broker's `range` assignor (sticky, and it keeps
    /// partition N of every co-partitioned topic on one member).
    Consumer,
}

/// Whether an app runs until stopped or over a bounded stretch of its input
/// (`processing.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessingMode {
    /// Runs until stopped.
    Streaming,
    /// Reads every source partition up to an end fixed when the run starts, closes every
    /// window, commits and exits; every instance of the app takes part in the same run.
    Bounded {
        /// `processing.bounded_until_ms`: the ends are the first offsets at or after this
        /// time; `None` for the partitions' ends at the run's start.
        until_ms: Option<i64>,
    },
}

/// Processing guarantee of an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarantee {
    /// Input offsets, outputs and state changes commit in one Kafka transaction.
    ExactlyOnce,
    /// Outputs are flushed, then offsets committed: a crash may repeat outputs.
    AtLeastOnce,
}

/// What happens to an input record that cannot be decoded (`errors.deserialization`) or whose
/// processing failed or panicked (`errors.processing`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordErrorHandler {
    /// Stop the app with an error naming topic, partition and offset (the default); nothing
    /// of the open transaction commits.
    Fail,
    /// Log the record's position, count it in a metric and go on.
    Skip,
    /// Write the raw record, with headers naming its origin and the error, to this topic in
    /// the same transaction, and go on.
    DeadLetter(String),
}

/// The handler of input records that cannot be decoded (the name it had before processing
/// errors got a handler of their own).
pub type DeserializationHandler = RecordErrorHandler;

/// Settings of the internal topics Eddy creates (changelogs, repartition topics, the control
/// topic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopicsConfig {
    /// `topics.replication_factor`: replicas of each internal topic partition; unset uses the
    /// broker's `default.replication.factor`. Topics that exist keep theirs.
    pub replication_factor: Option<i32>,
    /// `topics.min_insync_replicas`: the `min.insync.replicas` of each internal topic; unset
    /// uses the broker's.
    pub min_insync_replicas: Option<i32>,
}

/// A validated app configuration, in sections that mirror the keys.
#[derive(Debug, Clone)]
pub struct EddyConfig {
    /// `application.*`: who this app and instance are.
    pub application: ApplicationConfig,
    /// `kafka.*`: connection settings shared by every client.
    pub kafka: KafkaSettings,
    /// `processing.*`: guarantee, commits, threads, group membership, standbys, restarts.
    pub processing: ProcessingConfig,
    /// `memory.*`: process-wide memory tuning.
    pub memory: MemoryConfig,
    /// `state.*`: where task state lives and the RocksDB memory it may use.
    pub state: StateConfig,
    /// `errors.*`: what happens to records that cannot be decoded or processed.
    pub errors: ErrorsConfig,
    /// `topics.*`: settings of the internal topics.
    pub topics: TopicsConfig,
    /// `snapshot.*`: checkpoints and savepoints.
    pub snapshot: SnapshotConfig,
    /// `ops.*`: the instance's ops HTTP server.
    pub ops: OpsConfig,
    /// `telemetry.*`: logs, traces and metrics export.
    pub telemetry: TelemetryConfig,
    /// `app.*`: the app's own settings (for example `app.input_topic`), free-form.
    pub app: BTreeMap<String, String>,
}

/// `application.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationConfig {
    /// `application.id`: names the consumer group, internal topics and state directories.
    pub id: String,
    /// `application.instance_id`: this instance's stable id; generated and kept in the state
    /// directory when unset. It keys the transactional ids, so a restarted instance fences its
    /// previous incarnation at once.
    pub instance_id: Option<String>,
}

/// `processing.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessingConfig {
    /// `processing.guarantee`: `exactly_once` (default) or `at_least_once`.
    pub guarantee: Guarantee,
    /// `processing.commit_interval_ms`: how often a stream thread commits under load.
    pub commit_interval: Duration,
    /// `processing.commit_min_gap_ms` (default 5 ms): under exactly-once, a thread that has
    /// processed everything it fetched commits at once instead of waiting for the interval,
    /// but not sooner than this after its last commit; zero, or at or above the interval:
    /// the interval alone.
    pub commit_min_gap: Duration,
    /// `processing.threads`: stream threads per instance.
    pub threads: usize,
    /// `processing.standby_replicas`: standby copies kept of each stateful task on other
    /// instances.
    pub standby_replicas: usize,
    /// `processing.warmup_before_join`: bring every stateful task's local state up to date
    /// before joining the group.
    pub warmup_before_join: bool,
    /// `processing.warmup_timeout_ms`: the longest warm-up before joining anyway.
    pub warmup_timeout: Duration,
    /// `processing.session_timeout_ms`: consumer group session timeout.
    pub session_timeout: Duration,
    /// `processing.group_protocol`: the consumer group protocol.
    pub group_protocol: GroupProtocol,
    /// `processing.static_membership`: join the group as a static member (`group.instance.id`
    /// from the instance id and thread), so a restarted instance takes its partitions back
    /// without a rebalance. A stopped instance's partitions then move only after the session
    /// timeout, since static members do not leave the group.
    pub static_membership: bool,
    /// `processing.load_tables_first`: a task that reads a table's topic besides other
    /// topics holds the others until the table's input has reached the end it had when the
    /// task started.
    pub load_tables_first: bool,
    /// `processing.max_task_idle_ms`: how long a task with several inputs waits for an input
    /// that has no record at hand but more in its partition, before it takes the others'
    /// records out of timestamp order.
    pub max_task_idle: Duration,
    /// `processing.mode` and `processing.bounded_until_ms`: streaming or a bounded run.
    pub mode: ProcessingMode,
    /// `processing.restart_deadline_ms`: how long a stream thread keeps starting over after
    /// recoverable errors (a broker restarting, a coordinator moving, aborted transactions)
    /// without committing anything before it gives up and stops the instance. Start-overs
    /// back off from 100 ms to 10 s.
    pub restart_deadline: Duration,
    /// `processing.repartition_purge_interval_ms`: how often each stream thread deletes the
    /// records of its repartition inputs that it has committed past (0 never). Repartition
    /// topics keep records without a time limit, so this is what bounds them.
    pub repartition_purge_interval: Duration,
}

/// `memory.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryConfig {
    /// `memory.malloc_arena_max`: glibc malloc arenas the process may use (0 keeps glibc's
    /// default of eight per core). Fewer arenas keep freed memory of librdkafka's and
    /// RocksDB's threads from staying resident.
    pub malloc_arena_max: u32,
    /// `memory.budget_mb`, in bytes: divided among RocksDB and the fetch queues (`None`:
    /// each part is sized by its own setting).
    pub budget_bytes: Option<u64>,
    /// The budget's share for records fetched ahead of processing, over every stream
    /// thread's consumer (`None`: each consumer gets a default bound of 2 MiB of payload).
    pub fetch_queue_bytes: Option<u64>,
}

/// `state.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateConfig {
    /// `state.dir`: where task state lives.
    pub dir: PathBuf,
    /// `state.cleanup_delay_ms`: the state of a task this instance has owned neither as
    /// active nor as standby for this long is deleted (`None`: kept forever).
    pub cleanup_delay: Option<Duration>,
    /// `state.block_cache_mb`, in bytes: the RocksDB block cache every store of the instance
    /// shares.
    pub block_cache_bytes: usize,
    /// `state.write_buffer_mb`, in bytes: the budget for the write buffers (memtables) of
    /// every RocksDB store of the instance together; the largest is flushed when it is
    /// reached.
    pub write_buffer_bytes: usize,
}

/// `errors.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorsConfig {
    /// `errors.deserialization` (`fail`, `skip`, `dead_letter`) with
    /// `errors.dead_letter_topic`.
    pub deserialization: DeserializationHandler,
    /// `errors.processing` (`fail`, `skip`, `dead_letter`): what happens to an input record
    /// whose processing returned an error or panicked. The open transaction is aborted first
    /// either way, so nothing the record half-did commits; `skip` and `dead_letter` then
    /// process the transaction's records again without it.
    pub processing: RecordErrorHandler,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (colours on a terminal).
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Logs, traces and metrics export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// `telemetry.log_format`: `pretty` (default) or `json`.
    pub log_format: LogFormat,
    /// `telemetry.otlp_endpoint`: base URL of an OTLP/HTTP receiver (for example
    /// `http://127.0.0.1:4318`); traces go to `/v1/traces`, metrics to `/v1/metrics`. Unset:
    /// nothing is exported.
    pub otlp_endpoint: Option<String>,
    /// `telemetry.export_interval_ms`: how often metrics are exported (default 10000).
    pub export_interval: Duration,
    /// `telemetry.service_name`: the OTel `service.name` (default: the application id).
    pub service_name: String,
}

/// The ops HTTP server (health, readiness, metrics, state queries, savepoints).
#[derive(Clone, PartialEq, Eq)]
pub struct OpsConfig {
    /// `ops.address`: where the server listens (default `127.0.0.1:0`, a free port, written
    /// to `<state.dir>/<application.id>/ops-address`); `off` runs no server.
    pub address: Option<std::net::SocketAddr>,
    /// `ops.advertised_address`: the `host:port` other instances use to reach this one's ops
    /// server (forwarded state queries); defaults to the bound address.
    pub advertised: Option<String>,
    /// `ops.admin_token`: when set, mutating routes (`POST /savepoints`) need the header
    /// `Authorization: Bearer <token>`. Never logged.
    pub admin_token: Option<String>,
    /// `ops.savepoint_dirs`: comma-separated directories or `s3://` locations (besides
    /// `snapshot.dir`) that `POST /savepoints?store=` may write to, with what is below
    /// them; a store anywhere else is refused.
    pub savepoint_dirs: Vec<StoreLocation>,
}

impl std::fmt::Debug for OpsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsConfig")
            .field("address", &self.address)
            .field("advertised", &self.advertised)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("savepoint_dirs", &self.savepoint_dirs)
            .finish()
    }
}

/// Where snapshots go and when they are taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotConfig {
    /// `snapshot.dir`: the snapshot store every instance can reach (a directory or
    /// `s3://bucket/prefix`). Unset: no checkpoints; moved tasks restore from their
    /// changelogs alone.
    pub dir: Option<StoreLocation>,
    /// `snapshot.checkpoint_interval_ms`: how often each task's state is checkpointed to the
    /// store (default 60000 when `snapshot.dir` is set; 0 turns checkpoints off).
    pub checkpoint_interval: Option<Duration>,
    /// `snapshot.from_savepoint`: the location of a savepoint to start from (applied once;
    /// later starts with the same value continue from the app's own progress).
    pub from_savepoint: Option<String>,
    /// `snapshot.s3_*`: how to reach S3 for `s3://` locations.
    pub s3: S3Settings,
}

impl EddyConfig {
    /// The app setting `app.<key>`.
    pub fn app_setting(&self, key: &str) -> Option<&str> {
        self.app.get(key).map(String::as_str)
    }
}

/// The configuration is invalid; every problem found is listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:\n  - {}", problems.join("\n  - "))]
pub struct ConfigError {
    /// One line per problem, naming the key and where its value came from.
    pub problems: Vec<String>,
}

impl ConfigError {
    fn one(problem: String) -> Self {
        ConfigError {
            problems: vec![problem],
        }
    }
}

/// Why the librdkafka property `name` may not be set through `kafka.properties.*`, when it may
/// not: exactly-once depends on these, or Eddy sets them from keys of its own.
pub fn protected_property(name: &str) -> Option<&'static str> {
    Some(match name {
        "isolation.level" => "Eddy reads read_committed under exactly-once and read_uncommitted under at-least-once (processing.guarantee)",
        "transactional.id" => "Eddy derives one transactional id per instance and thread so a restart fences its predecessor",
        "enable.idempotence" => "transactions and Eddy's ordering depend on the idempotent producer",
        "enable.auto.commit" | "enable.auto.offset.store" => "input offsets commit inside Eddy's transactions, never on their own",
        "group.id" => "the consumer group is the application id (application.id)",
        "group.instance.id" => "static membership is derived from the instance id (processing.static_membership)",
        "auto.offset.reset" => "tasks start from their committed offsets or the beginning, never elsewhere",
        "client.id" => "Eddy names every client after the instance and thread it serves",
        "bootstrap.servers" => "set it with kafka.bootstrap_servers",
        "transaction.timeout.ms" => "set it with kafka.transaction_timeout_ms",
        "session.timeout.ms" => "set it with processing.session_timeout_ms",
        "partition.assignment.strategy" | "group.protocol" | "group.remote.assignor" => "set the group protocol with processing.group_protocol",
        _ => return None,
    })
}
