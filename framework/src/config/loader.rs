//! Reading the configuration: the layers (defaults, file, environment, flags) and the
//! validation of every key against its declaration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::fields::{flatten, Fields};
use super::{
    protected_property, ApplicationConfig, ConfigError, EddyConfig, ErrorsConfig, GroupProtocol,
    Guarantee, LogFormat, MemoryConfig, OpsConfig, ProcessingConfig, ProcessingMode,
    SnapshotConfig, StateConfig, TelemetryConfig, TopicsConfig, SETTINGS,
};
use crate::kafka::KafkaSettings;
use crate::snapshot::S3Settings;

/// Layers configuration sources, lowest precedence first: defaults, file, environment, flags.
///
/// ```
/// use eddy::config::ConfigLoader;
///
/// let config = ConfigLoader::new()
///     .environment_from([("EDDY__PROCESSING__COMMIT_INTERVAL_MS", "250")])
///     .flag("application.id", "wordcount")
///     .flag("kafka.bootstrap_servers", "127.0.0.1:9092")
///     .load()?;
/// assert_eq!(config.processing.commit_interval.as_millis(), 250);
/// # Ok::<(), eddy::config::ConfigError>(())
/// ```
#[derive(Debug, Default)]
pub struct ConfigLoader {
    file: Option<PathBuf>,
    environment: Option<BTreeMap<String, String>>,
    flags: BTreeMap<String, String>,
    app_defaults: BTreeMap<String, String>,
}

impl ConfigLoader {
    /// A loader reading the process environment and no file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads this TOML file (it must exist).
    #[must_use]
    pub fn file(mut self, path: impl AsRef<Path>) -> Self {
        self.file = Some(path.as_ref().to_path_buf());
        self
    }

    /// Uses these variables instead of the process environment (for tests and embedding).
    #[must_use]
    pub fn environment_from<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.environment = Some(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Sets `key` (for example `application.id`) from a command-line flag; flags win.
    #[must_use]
    pub fn flag(mut self, key: &str, value: impl Into<String>) -> Self {
        self.flags.insert(key.to_owned(), value.into());
        self
    }

    /// Gives `key` the app's own default, below the file, the environment and flags (for
    /// example `processing.group_protocol = consumer` in an app that joins two topics).
    #[must_use]
    pub fn app_default(mut self, key: &str, value: impl Into<String>) -> Self {
        self.app_defaults.insert(key.to_owned(), value.into());
        self
    }

    /// Sets `key` when `value` is `Some`.
    #[must_use]
    pub fn flag_opt(self, key: &str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.flag(key, v),
            None => self,
        }
    }

    /// Merges the sources and validates every key.
    ///
    /// # Errors
    /// [`ConfigError`] listing every unknown key, invalid value and missing required key.
    pub fn load(self) -> Result<EddyConfig, ConfigError> {
        let mut builder = config::Config::builder();
        for (key, value) in &self.app_defaults {
            builder = builder
                .set_default(key.as_str(), value.as_str())
                .map_err(|e| ConfigError::one(format!("default of `{key}`: {e}")))?;
        }
        if let Some(path) = &self.file {
            builder = builder.add_source(
                config::File::from(path.as_path())
                    .format(config::FileFormat::Toml)
                    .required(true),
            );
        }
        let mut env = config::Environment::with_prefix("EDDY")
            .prefix_separator("__")
            .separator("__");
        if let Some(vars) = self.environment {
            env = env.source(Some(vars.into_iter().collect()));
        }
        builder = builder.add_source(env);
        for (key, value) in &self.flags {
            builder = builder
                .set_override(key.as_str(), value.as_str())
                .map_err(|e| ConfigError::one(format!("flag `{key}`: {e}")))?;
        }
        let merged = builder
            .build()
            .map_err(|e| ConfigError::one(e.to_string()))?;
        let root = merged
            .cache
            .into_table()
            .map_err(|e| ConfigError::one(e.to_string()))?;
        let mut flat = BTreeMap::new();
        flatten("", root, &mut flat);
        Fields::new(flat).validate()
    }
}

impl Fields {
    fn validate(mut self) -> Result<EddyConfig, ConfigError> {
        let application_id = self.required("application.id");
        self.name("application.id", &application_id);
        let instance_id = self.text("application.instance_id");
        if let Some(id) = &instance_id {
            self.name("application.instance_id", id);
        }
        let bootstrap_servers = self.required("kafka.bootstrap_servers");
        let transaction_timeout_ms = self.number("kafka.transaction_timeout_ms");
        let guarantee = match self.choice("processing.guarantee") {
            "at_least_once" => Guarantee::AtLeastOnce,
            _ => Guarantee::ExactlyOnce,
        };
        let commit_interval_ms = self.number("processing.commit_interval_ms");
        if commit_interval_ms >= transaction_timeout_ms {
            self.problems.push(format!(
                "`processing.commit_interval_ms` ({commit_interval_ms}) must be below `kafka.transaction_timeout_ms` ({transaction_timeout_ms})"
            ));
        }
        let commit_min_gap_ms = self.number("processing.commit_min_gap_ms");
        let threads = self.number("processing.threads");
        let standby_replicas = self.number("processing.standby_replicas");
        let warmup_before_join = self.choice("processing.warmup_before_join") == "true";
        let warmup_timeout_ms = self.number("processing.warmup_timeout_ms");
        let session_timeout_ms = self.number("processing.session_timeout_ms");
        let static_membership = self.choice("processing.static_membership") == "true";
        let load_tables_first = self.choice("processing.load_tables_first") == "true";
        let max_task_idle_ms = self.number("processing.max_task_idle_ms");
        // Read (and checked) in either mode: a streaming app given a bound must not hear that
        // the key is unknown.
        let bounded_until_set = self.entries.contains_key("processing.bounded_until_ms");
        let until_ms = i64::try_from(self.number("processing.bounded_until_ms"))
            .ok()
            .filter(|&ms| ms > 0);
        let mode = match self.choice("processing.mode") {
            "bounded" => ProcessingMode::Bounded { until_ms },
            _ => {
                if bounded_until_set {
                    self.problems.push(
                        "`processing.bounded_until_ms` applies only with `processing.mode` = `bounded`"
                            .to_owned(),
                    );
                }
                ProcessingMode::Streaming
            }
        };
        let group_protocol = match self.choice("processing.group_protocol") {
            "consumer" => GroupProtocol::Consumer,
            "classic" => GroupProtocol::Classic,
            _ => GroupProtocol::Auto,
        };
        let malloc_arena_max = self.number("memory.malloc_arena_max");
        let block_cache_set = self.entries.contains_key("state.block_cache_mb");
        let write_buffer_set = self.entries.contains_key("state.write_buffer_mb");
        let mut block_cache = self.number("state.block_cache_mb") << 20;
        let mut write_buffer = self.number("state.write_buffer_mb") << 20;
        let budget = self
            .optional_number("memory.budget_mb")
            .and_then(|mb| u64::try_from(mb).ok())
            .map(|mb| mb << 20);
        let mut fetch_queue_bytes = None;
        if let Some(budget) = budget {
            match super::budget::divide(
                budget,
                block_cache_set.then_some(block_cache),
                write_buffer_set.then_some(write_buffer),
            ) {
                Ok(division) => {
                    block_cache = division.block_cache;
                    write_buffer = division.write_buffers;
                    fetch_queue_bytes = Some(division.fetch_queues);
                }
                Err(problem) => self.problems.push(problem),
            }
        }
        let cleanup_delay_ms = self.number("state.cleanup_delay_ms");
        // Declared with a default: `None` only for a missing declaration, already a problem.
        let state_dir = PathBuf::from(self.text("state.dir").unwrap_or_default());
        let handler = self.choice("errors.deserialization");
        let processing_handler = self.choice("errors.processing");
        let dead_letter_topic = self.text("errors.dead_letter_topic");
        let deserialization =
            self.record_handler("errors.deserialization", handler, &dead_letter_topic);
        let processing_errors =
            self.record_handler("errors.processing", processing_handler, &dead_letter_topic);
        let purge_interval_ms = self.number("processing.repartition_purge_interval_ms");
        let restart_deadline_ms = self.number("processing.restart_deadline_ms");
        let replication_factor = self.optional_number("topics.replication_factor");
        let min_insync_replicas = self.optional_number("topics.min_insync_replicas");
        if let (Some(rf), Some(isr)) = (replication_factor, min_insync_replicas) {
            if isr > rf {
                self.problems.push(format!(
                    "`topics.min_insync_replicas` ({isr}) exceeds `topics.replication_factor` ({rf}): no write could ever be acknowledged"
                ));
            }
        }
        let snapshot_dir = self
            .text("snapshot.dir")
            .and_then(|text| self.location("snapshot.dir", &text));
        let interval_ms = self.number("snapshot.checkpoint_interval_ms");
        let from_savepoint = self.text("snapshot.from_savepoint");
        let s3 = S3Settings {
            endpoint: self.text("snapshot.s3_endpoint"),
            region: self.text("snapshot.s3_region"),
            access_key_id: self.text("snapshot.s3_access_key_id"),
            secret_access_key: self.text("snapshot.s3_secret_access_key"),
        };
        let snapshot = SnapshotConfig {
            checkpoint_interval: (snapshot_dir.is_some() && interval_ms > 0)
                .then(|| Duration::from_millis(interval_ms)),
            dir: snapshot_dir,
            from_savepoint,
            s3,
        };
        let ops_address = match self.text("ops.address").as_deref() {
            Some("off") | None => None,
            Some(text) => match text.parse::<std::net::SocketAddr>() {
                Ok(address) => Some(address),
                Err(_) => {
                    self.problems.push(format!(
                            "`ops.address` = `{text}` is not an IP address and port (for example 127.0.0.1:9464) or `off`"
                        ));
                    None
                }
            },
        };
        let ops_advertised = self.text("ops.advertised_address");
        let admin_token = self
            .text("ops.admin_token")
            .filter(|t| !t.trim().is_empty());
        let listed = self.text("ops.savepoint_dirs").unwrap_or_default();
        let mut savepoint_dirs = Vec::new();
        for text in listed.split(',').map(str::trim).filter(|d| !d.is_empty()) {
            let Some(location) = self.location("ops.savepoint_dirs", text) else {
                continue;
            };
            match location.check_shared() {
                Ok(()) => savepoint_dirs.push(location),
                Err(why) => self
                    .problems
                    .push(format!("`ops.savepoint_dirs` holds {why}")),
            }
        }
        let log_format = match self.choice("telemetry.log_format") {
            "json" => LogFormat::Json,
            _ => LogFormat::Pretty,
        };
        let otlp_endpoint = self
            .text("telemetry.otlp_endpoint")
            .filter(|e| !e.trim().is_empty());
        if let Some(endpoint) = &otlp_endpoint {
            if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
                self.problems.push(format!(
                    "`telemetry.otlp_endpoint` = `{endpoint}` is not an http:// or https:// URL"
                ));
            }
        }
        let export_interval_ms = self.number("telemetry.export_interval_ms");
        let service_name = self
            .text("telemetry.service_name")
            .unwrap_or_else(|| application_id.clone());
        let mut client_properties = BTreeMap::new();
        let mut app = BTreeMap::new();
        let rest = std::mem::take(&mut self.entries);
        for (key, entry) in rest {
            if let Some(name) = key.strip_prefix("app.") {
                app.insert(name.to_owned(), entry.value);
                continue;
            }
            match key.strip_prefix("kafka.properties.") {
                // librdkafka names never hold `_`; environment keys cannot hold `.`.
                Some(name) => {
                    let name = name.replace('_', ".");
                    if let Some(why) = protected_property(&name) {
                        self.problems.push(format!(
                            "`{key}` (set by {}) cannot be set: {why}",
                            entry.origin
                        ));
                        continue;
                    }
                    client_properties.insert(name, entry.value);
                }
                None => self.problems.push(format!(
                    "unknown key `{key}` (set by {}); known keys: {}",
                    entry.origin,
                    SETTINGS
                        .iter()
                        .map(|s| s.key)
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
        let kafka = KafkaSettings {
            bootstrap_servers,
            transaction_timeout: Duration::from_millis(transaction_timeout_ms),
            client_properties,
        };
        if let Err((property, reason)) = kafka.check_properties() {
            self.problems.push(format!(
                "`kafka.properties.{property}` is refused by the Kafka client: {reason}"
            ));
        }
        if !self.problems.is_empty() {
            return Err(ConfigError {
                problems: self.problems,
            });
        }
        Ok(EddyConfig {
            application: ApplicationConfig {
                id: application_id,
                instance_id,
            },
            kafka,
            processing: ProcessingConfig {
                guarantee,
                commit_interval: Duration::from_millis(commit_interval_ms),
                commit_min_gap: Duration::from_millis(commit_min_gap_ms),
                threads: usize::try_from(threads).unwrap_or(1),
                standby_replicas: usize::try_from(standby_replicas).unwrap_or(0),
                warmup_before_join,
                warmup_timeout: Duration::from_millis(warmup_timeout_ms),
                session_timeout: Duration::from_millis(session_timeout_ms),
                static_membership,
                load_tables_first,
                max_task_idle: Duration::from_millis(max_task_idle_ms),
                mode,
                group_protocol,
                restart_deadline: Duration::from_millis(restart_deadline_ms),
                repartition_purge_interval: Duration::from_millis(purge_interval_ms),
            },
            memory: MemoryConfig {
                malloc_arena_max: u32::try_from(malloc_arena_max).unwrap_or(2),
                budget_bytes: budget,
                fetch_queue_bytes,
            },
            state: StateConfig {
                dir: state_dir,
                cleanup_delay: (cleanup_delay_ms > 0)
                    .then(|| Duration::from_millis(cleanup_delay_ms)),
                block_cache_bytes: usize::try_from(block_cache).unwrap_or(32 << 20),
                write_buffer_bytes: usize::try_from(write_buffer).unwrap_or(64 << 20),
            },
            errors: ErrorsConfig {
                deserialization,
                processing: processing_errors,
            },
            topics: TopicsConfig {
                replication_factor,
                min_insync_replicas,
            },
            snapshot,
            ops: OpsConfig {
                address: ops_address,
                advertised: ops_advertised,
                admin_token,
                savepoint_dirs,
            },
            telemetry: TelemetryConfig {
                log_format,
                otlp_endpoint,
                export_interval: Duration::from_millis(export_interval_ms),
                service_name,
            },
            app,
        })
    }
}

#[cfg(test)]
#[path = "loader_tests.rs"]
mod tests;
