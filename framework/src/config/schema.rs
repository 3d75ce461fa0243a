//! Every setting declared once: its key, how its value is read (type, default, range or
//! choices) and what it means. Validation, the unknown-key message, `eddy settings` and the
//! README's key table are derived from [`SETTINGS`].

/// The default transaction timeout (`kafka.transaction_timeout_ms`), shared with
/// [`KafkaSettings`](crate::kafka::KafkaSettings) built without a configuration.
pub const TRANSACTION_TIMEOUT_MS: u64 = 10_000;

/// How a setting's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text that must be set.
    Required,
    /// Text; `value` when unset (`None`: unset), `shown` as its default in the key table.
    Text {
        /// The value when unset.
        value: Option<&'static str>,
        /// The default as the key table shows it.
        shown: &'static str,
    },
    /// A whole number in `min..=max`.
    Number {
        /// The value when unset.
        default: u64,
        /// The smallest value accepted.
        min: u64,
        /// The largest value accepted.
        max: u64,
    },
    /// A whole number in `min..=max`, or unset (`shown` as the default).
    OptionalNumber {
        /// The smallest value accepted.
        min: i32,
        /// The largest value accepted.
        max: i32,
        /// What unset means, as the key table shows it.
        shown: &'static str,
    },
    /// One of `choices`; the first is the default.
    Choice {
        /// The accepted values, the default first.
        choices: &'static [&'static str],
    },
    /// Free-form keys under this prefix (`kafka.properties.*`, `app.*`).
    Prefix,
}

/// One setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The key (`section.name`; a prefix ends in `.*`).
    pub key: &'static str,
    /// How its value is read.
    pub kind: Kind,
    /// What it means, as the key table says it.
    pub doc: &'static str,
}

impl Setting {
    /// The default as the key table shows it.
    pub fn shown_default(&self) -> String {
        match self.kind {
            Kind::Required => "required".to_owned(),
            Kind::Text { shown, .. } | Kind::OptionalNumber { shown, .. } => shown.to_owned(),
            Kind::Number { default, .. } => default.to_string(),
            Kind::Choice { choices } => format!("`{}`", choices.first().copied().unwrap_or("")),
            Kind::Prefix => String::new(),
        }
    }
}

const HANDLERS: &[&str] = &["fail", "skip", "dead_letter"];
const BOOLEAN: &[&str] = &["false", "true"];
/// A boolean that defaults to true.
const BOOLEAN_ON: &[&str] = &["true", "false"];
const DAY_MS: u64 = 86_400_000;

const fn number(key: &'static str, default: u64, min: u64, max: u64, doc: &'static str) -> Setting {
    Setting {
        key,
        kind: Kind::Number { default, min, max },
        doc,
    }
}

const fn text(key: &'static str, shown: &'static str, doc: &'static str) -> Setting {
    Setting {
        key,
        kind: Kind::Text { value: None, shown },
        doc,
    }
}

const fn choice(key: &'static str, choices: &'static [&'static str], doc: &'static str) -> Setting {
    Setting {
        key,
        kind: Kind::Choice { choices },
        doc,
    }
}

/// Every setting, in the order the key table lists them.
pub const SETTINGS: &[Setting] = &[
    Setting {
        key: "application.id",
        kind: Kind::Required,
        doc: "consumer group, internal topic prefix, state subdirectory",
    },
    text(
        "application.instance_id",
        "generated, kept in the state dir",
        "keys transactional ids, so a restart fences its predecessor at once",
    ),
    Setting {
        key: "kafka.bootstrap_servers",
        kind: Kind::Required,
        doc: "brokers",
    },
    number(
        "kafka.transaction_timeout_ms",
        TRANSACTION_TIMEOUT_MS,
        1_000,
        900_000,
        "bounds how long a crashed instance's transaction blocks its partitions",
    ),
    Setting {
        key: "kafka.properties.*",
        kind: Kind::Prefix,
        doc: "extra librdkafka properties (in environment names, `_` stands for `.`); those exactly-once depends on (`isolation.level`, `transactional.id`, `enable.idempotence`, `enable.auto.commit`, `group.id`, `auto.offset.reset`, `client.id`, ...) are refused",
    },
    choice(
        "processing.guarantee",
        &["exactly_once", "at_least_once"],
        "or `at_least_once`",
    ),
    number(
        "processing.commit_interval_ms",
        100,
        1,
        600_000,
        "how often each stream thread commits under load",
    ),
    number(
        "processing.commit_min_gap_ms",
        5,
        0,
        600_000,
        "an exactly-once thread that has processed everything it fetched commits at once, not sooner than N ms after its last commit (the interval still bounds a commit under load); 0: commits by the interval alone",
    ),
    number("processing.threads", 1, 1, 64, "stream threads per instance"),
    number(
        "processing.session_timeout_ms",
        6_000,
        1_000,
        3_600_000,
        "consumer group session timeout",
    ),
    choice(
        "processing.group_protocol",
        &["auto", "classic", "consumer"],
        "`auto`: `consumer` where the brokers offer it (Kafka 4.0+) with a `group.consumer.session.timeout.ms` no longer than `processing.session_timeout_ms` and members are not static, or where the topology joins co-partitioned topics; `classic` otherwise. `classic`: client-side cooperative-sticky assignor, two rounds per rebalance. `consumer` (KIP-848): the broker's sticky range assignor, one round, partition N of co-partitioned topics on one member; session timeouts are then the broker's `group.consumer.*` settings",
    ),
    choice(
        "processing.static_membership",
        BOOLEAN,
        "join as a static member: a restarted instance takes its partitions back without a rebalance; a stopped one's move only after the session timeout",
    ),
    number(
        "processing.max_task_idle_ms",
        1000,
        0,
        DAY_MS,
        "a task that reads several topics takes their records in timestamp order; it waits this long for an input that has no record at hand but is known to have more before taking the others out of order",
    ),
    choice(
        "processing.mode",
        &["streaming", "bounded"],
        "`streaming` runs until stopped; `bounded` reads the source topics up to their ends at the run's start (or `processing.bounded_until_ms`), closes every window, commits and exits 0; every instance of the app follows the same run",
    ),
    number(
        "processing.bounded_until_ms",
        0,
        0,
        i64::MAX as u64,
        "in a bounded run, read each source partition up to its first record at or after this time (milliseconds since the epoch) instead of its end at the run's start; 0 for the end",
    ),
    choice(
        "processing.load_tables_first",
        BOOLEAN_ON,
        "a task that reads a table's topic and other topics (a stream-table join) reads the table to its end first, so early stream records do not meet an empty table",
    ),
    number(
        "processing.standby_replicas",
        0,
        0,
        8,
        "standby copies of each stateful task kept on other instances, fed from the changelogs",
    ),
    choice(
        "processing.warmup_before_join",
        BOOLEAN,
        "bring every stateful task's local state to its changelog's end before joining the group",
    ),
    number(
        "processing.warmup_timeout_ms",
        300_000,
        1_000,
        DAY_MS,
        "the longest warm-up before joining anyway",
    ),
    number(
        "processing.restart_deadline_ms",
        300_000,
        1_000,
        DAY_MS,
        "a stream thread that keeps starting over after recoverable errors (brokers restarting, aborts) without committing anything stops the instance after this; start-overs back off from 100 ms to 10 s",
    ),
    number(
        "processing.repartition_purge_interval_ms",
        30_000,
        0,
        DAY_MS,
        "how often each thread deletes repartition records its tasks committed past (0 = never); repartition topics keep records without a time limit",
    ),
    Setting {
        key: "topics.replication_factor",
        kind: Kind::OptionalNumber {
            min: 1,
            max: 32,
            shown: "the broker's",
        },
        doc: "replicas of the internal topics Eddy creates (changelogs, repartition, control); a single replica on a cluster of several brokers is warned about",
    },
    Setting {
        key: "topics.min_insync_replicas",
        kind: Kind::OptionalNumber {
            min: 1,
            max: 32,
            shown: "the broker's",
        },
        doc: "`min.insync.replicas` of those topics",
    },
    number(
        "memory.malloc_arena_max",
        2,
        0,
        1_024,
        "glibc malloc arenas (0 = glibc's default of 8 per core); fewer arenas keep the freed memory of librdkafka's and RocksDB's threads from staying resident. A `MALLOC_ARENA_MAX` variable wins",
    ),
    Setting {
        key: "memory.budget_mb",
        kind: Kind::OptionalNumber {
            min: 64,
            max: 1 << 20,
            shown: "none",
        },
        doc: "one budget for the memory that grows with load, divided among RocksDB's block cache (35%) and write buffers (20%) and the records the consumers fetch ahead of processing (20%, bounding each stream thread's consumer queue, which is 2 MiB of payload without a budget); the rest is left for records in flight and the program. `state.block_cache_mb` and `state.write_buffer_mb`, when set, win over their shares",
    },
    Setting {
        key: "state.dir",
        kind: Kind::Text {
            value: Some("./eddy-state"),
            shown: "`./eddy-state`",
        },
        doc: "task state (RocksDB)",
    },
    number(
        "state.cleanup_delay_ms",
        600_000,
        0,
        7 * DAY_MS,
        "the state of a task this instance has owned neither as active nor as standby for this long is deleted (0 = kept forever)",
    ),
    number(
        "state.block_cache_mb",
        32,
        0,
        1 << 20,
        "the RocksDB block cache all stores of the instance share",
    ),
    number(
        "state.write_buffer_mb",
        64,
        1,
        1 << 20,
        "the budget for the write buffers (memtables) of all RocksDB stores of the instance together; the largest is flushed when it is reached",
    ),
    choice(
        "errors.deserialization",
        HANDLERS,
        "`fail`, `skip` (logged and counted) or `dead_letter`",
    ),
    choice(
        "errors.processing",
        HANDLERS,
        "a record whose processing returns an error or panics: its transaction is aborted, then `fail` stops the instance naming the record, `skip` (logged and counted) or `dead_letter` process the rest again without it",
    ),
    text(
        "errors.dead_letter_topic",
        "",
        "where `dead_letter` writes bad records, with `eddy.topic/partition/offset/error` headers",
    ),
    text(
        "snapshot.dir",
        "unset",
        "the snapshot store every instance reaches, for checkpoints: a directory or `s3://bucket/prefix`",
    ),
    text(
        "snapshot.s3_endpoint",
        "AWS S3",
        "URL of an S3-compatible service (`http://` allowed as given)",
    ),
    text(
        "snapshot.s3_region",
        "`AWS_REGION`, else `us-east-1`",
        "the bucket's region",
    ),
    text(
        "snapshot.s3_access_key_id",
        "`AWS_ACCESS_KEY_ID`, else instance credentials",
        "S3 access key id",
    ),
    text(
        "snapshot.s3_secret_access_key",
        "`AWS_SECRET_ACCESS_KEY`, else instance credentials",
        "S3 secret key (never logged)",
    ),
    number(
        "snapshot.checkpoint_interval_ms",
        60_000,
        0,
        DAY_MS,
        "how often tasks are checkpointed to `snapshot.dir` (0 = off)",
    ),
    text(
        "snapshot.from_savepoint",
        "unset",
        "start from this savepoint, a directory or `s3://` location (applied once; rollback, upgrade, fork)",
    ),
    Setting {
        key: "ops.address",
        kind: Kind::Text {
            value: Some("127.0.0.1:0"),
            shown: "`127.0.0.1:0`",
        },
        doc: "the ops HTTP server (`off` for none); a free port is written to `<state.dir>/<application.id>/ops-address`",
    },
    text(
        "ops.advertised_address",
        "the bound address",
        "where other instances reach this one (forwarded state queries)",
    ),
    text(
        "ops.admin_token",
        "unset",
        "when set, `POST /savepoints` needs `Authorization: Bearer <token>`",
    ),
    text(
        "ops.savepoint_dirs",
        "",
        "comma-separated absolute directories or `s3://` locations (besides `snapshot.dir`) `POST /savepoints?store=` may write to, with what is below them",
    ),
    choice(
        "telemetry.log_format",
        &["pretty", "json"],
        "or `json` (one object per line); the filter is `RUST_LOG` (default `info`)",
    ),
    text(
        "telemetry.otlp_endpoint",
        "unset",
        "OTLP/HTTP receiver (`http://host:4318`): traces (a span per task and per commit) and metrics",
    ),
    number(
        "telemetry.export_interval_ms",
        10_000,
        100,
        3_600_000,
        "metrics export interval",
    ),
    text(
        "telemetry.service_name",
        "the application id",
        "OTel `service.name`",
    ),
    Setting {
        key: "app.*",
        kind: Kind::Prefix,
        doc: "the app's own settings (wordcount: `app.input_topic`, `app.output_topic`)",
    },
];

/// The declaration of `key` (an exact key, not a prefix).
pub fn setting(key: &str) -> Option<&'static Setting> {
    SETTINGS
        .iter()
        .find(|s| s.key == key && s.kind != Kind::Prefix)
}

/// The key table, in Markdown, as the README shows it.
pub fn markdown_table() -> String {
    let mut out = String::from("| key | default | meaning |\n| --- | --- | --- |\n");
    for s in SETTINGS {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            s.key,
            s.shown_default(),
            s.doc
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_defaults_lie_in_their_ranges() {
        let mut keys: Vec<&str> = SETTINGS.iter().map(|s| s.key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), SETTINGS.len(), "a key is declared twice");
        for s in SETTINGS {
            match s.kind {
                Kind::Number { default, min, max } => {
                    assert!((min..=max).contains(&default), "{}", s.key);
                }
                Kind::Choice { choices } => assert!(!choices.is_empty(), "{}", s.key),
                _ => {}
            }
        }
    }

    #[test]
    fn the_readme_key_table_is_the_declared_one() {
        let readme = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"),
        )
        .unwrap();
        let start = readme.find("| key | default | meaning |").unwrap();
        let table: String = readme[start..]
            .lines()
            .take_while(|l| l.starts_with('|'))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            table,
            markdown_table(),
            "README.md's key table differs from config::schema::SETTINGS; the declared table is:\n{}",
            markdown_table()
        );
    }
}
