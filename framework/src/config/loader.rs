//! Reading the configuration: the layers (defaults, file, environment, flags) and the
//! validation of every key against its declaration.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    protected_property, setting, ApplicationConfig, ConfigError, EddyConfig, ErrorsConfig,
    GroupProtocol, Guarantee, Kind, LogFormat, MemoryConfig, OpsConfig, ProcessingConfig,
    ProcessingMode, RecordErrorHandler, SnapshotConfig, StateConfig, TelemetryConfig, TopicsConfig,
    SETTINGS,
};
use crate::kafka::KafkaSettings;
use crate::snapshot::{S3Settings, StoreLocation};

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

/// A leaf value with where it came from.
struct Entry {
    value: String,
    origin: String,
}

fn flatten(
    prefix: &str,
    table: config::Map<String, config::Value>,
    out: &mut BTreeMap<String, Entry>,
) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        let origin = match value.origin() {
            None => "a command-line flag".to_owned(),
            Some("the environment") => format!(
                "environment variable EDDY__{}",
                path.replace('.', "__").to_uppercase()
            ),
            Some(file) => file.to_owned(),
        };
        match value.kind {
            config::ValueKind::Table(t) => flatten(&path, t, out),
            _ => {
                let text = value.to_string();
                out.insert(
                    path,
                    Entry {
                        value: text,
                        origin,
                    },
                );
            }
        }
    }
}

/// Validation state: the flat keys left to check and the problems found.
struct Fields {
    entries: BTreeMap<String, Entry>,
    problems: Vec<String>,
}

impl Fields {
    fn new(entries: BTreeMap<String, Entry>) -> Self {
        Fields {
            entries,
            problems: Vec::new(),
        }
    }

    fn take(&mut self, key: &str) -> Option<Entry> {
        self.entries.remove(key)
    }

    /// How `key` is read, from its declaration; a key used here but not declared is a bug,
    /// reported as a problem rather than a panic.
    fn declared(&mut self, key: &str) -> Option<Kind> {
        let kind = setting(key).map(|s| s.kind);
        if kind.is_none() {
            self.problems.push(format!(
                "`{key}` has no declaration in config::schema (a bug in Eddy)"
            ));
        }
        kind
    }

    /// The text of `key`, or its declared default.
    fn text(&mut self, key: &str) -> Option<String> {
        let default = match self.declared(key) {
            Some(Kind::Text { value, .. }) => value,
            _ => None,
        };
        self.take(key)
            .map(|e| e.value)
            .or_else(|| default.map(str::to_owned))
    }

    /// Reads `text`, the value of `key`, as a snapshot store location (a problem otherwise).
    fn location(&mut self, key: &str, text: &str) -> Option<StoreLocation> {
        match StoreLocation::parse(text) {
            Ok(location) => Some(location),
            Err(e) => {
                self.problems.push(format!("`{key}`: {e}"));
                None
            }
        }
    }

    fn required(&mut self, key: &str) -> String {
        match self.take(key) {
            Some(e) if !e.value.trim().is_empty() => e.value,
            Some(e) => {
                self.problems
                    .push(format!("`{key}` is empty (set by {})", e.origin));
                String::new()
            }
            None => {
                let env = format!("EDDY__{}", key.replace('.', "__").to_uppercase());
                self.problems.push(format!(
                    "`{key}` is required (set it in the file, with {env} or a flag)"
                ));
                String::new()
            }
        }
    }

    fn number(&mut self, key: &str) -> u64 {
        let Some(Kind::Number { default, min, max }) = self.declared(key) else {
            return 0;
        };
        let Some(e) = self.take(key) else {
            return default;
        };
        match e.value.trim().parse::<u64>() {
            Ok(n) if (min..=max).contains(&n) => n,
            _ => {
                self.problems.push(format!(
                    "`{key}` = `{}` (set by {}) is not a whole number from {min} to {max}",
                    e.value, e.origin
                ));
                default
            }
        }
    }

    /// The declared choice `key` holds (its first when unset or invalid).
    fn choice(&mut self, key: &str) -> &'static str {
        let Some(Kind::Choice { choices }) = self.declared(key) else {
            return "";
        };
        let default = choices.first().copied().unwrap_or("");
        let Some(e) = self.take(key) else {
            return default;
        };
        match choices.iter().find(|c| **c == e.value.trim()) {
            Some(c) => c,
            None => {
                self.problems.push(format!(
                    "`{key}` = `{}` (set by {}) is not one of: {}",
                    e.value,
                    e.origin,
                    choices.join(", ")
                ));
                default
            }
        }
    }

    /// A declared optional whole number: `None` when unset.
    fn optional_number(&mut self, key: &str) -> Option<i32> {
        let Some(Kind::OptionalNumber { min, max, .. }) = self.declared(key) else {
            return None;
        };
        let e = self.take(key)?;
        match e.value.trim().parse::<i32>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.problems.push(format!(
                    "`{key}` = `{}` (set by {}) is not a whole number from {min} to {max}",
                    e.value, e.origin
                ));
                None
            }
        }
    }

    /// The handler `name` chose for `key`, with the dead-letter topic it may need.
    fn record_handler(
        &mut self,
        key: &str,
        name: &str,
        dead_letter_topic: &Option<String>,
    ) -> RecordErrorHandler {
        match (name, dead_letter_topic) {
            ("skip", _) => RecordErrorHandler::Skip,
            ("dead_letter", Some(topic)) if !topic.is_empty() => {
                RecordErrorHandler::DeadLetter(topic.clone())
            }
            ("dead_letter", _) => {
                self.problems.push(format!(
                    "`{key}` = `dead_letter` needs `errors.dead_letter_topic`"
                ));
                RecordErrorHandler::Fail
            }
            _ => RecordErrorHandler::Fail,
        }
    }

    fn name(&mut self, key: &str, value: &str) {
        let ok = value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !value.is_empty() && !ok {
            self.problems.push(format!(
                "`{key}` = `{value}` may only hold ASCII letters, digits, `.`, `_` and `-` (it names Kafka topics and directories)"
            ));
        }
    }

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
            _ => GroupProtocol::Classic,
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
mod tests {
    #[test]
    fn an_app_default_gives_way_to_the_environment_and_flags() {
        let base = || {
            ConfigLoader::new()
                .app_default("processing.group_protocol", "consumer")
                .flag("application.id", "a")
                .flag("kafka.bootstrap_servers", "127.0.0.1:9092")
        };
        let plain = base()
            .environment_from(Vec::<(String, String)>::new())
            .load()
            .unwrap();
        assert_eq!(plain.processing.group_protocol, GroupProtocol::Consumer);
        let env = base()
            .environment_from([("EDDY__PROCESSING__GROUP_PROTOCOL", "classic")])
            .load()
            .unwrap();
        assert_eq!(env.processing.group_protocol, GroupProtocol::Classic);
        let flag = base()
            .environment_from(Vec::<(String, String)>::new())
            .flag("processing.group_protocol", "classic")
            .load()
            .unwrap();
        assert_eq!(flag.processing.group_protocol, GroupProtocol::Classic);
    }

    use super::*;
    use crate::config::DeserializationHandler;

    fn base() -> ConfigLoader {
        ConfigLoader::new().environment_from([
            ("EDDY__APPLICATION__ID", "app-1"),
            ("EDDY__KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        ])
    }

    /// Every declared setting is read into the configuration: one set to a valid value is
    /// never reported as unknown (a declaration the loader forgot would be).
    #[test]
    fn every_declared_setting_is_read() {
        use crate::config::schema::{Kind, SETTINGS};
        // Settings without a default need a value of their own to be valid.
        let example = |key: &str| match key {
            "snapshot.dir" | "ops.savepoint_dirs" => "/tmp/eddy-snapshots",
            "snapshot.from_savepoint" => "/tmp/eddy-snapshots/savepoints/sp-1",
            "snapshot.s3_endpoint" | "telemetry.otlp_endpoint" => "http://127.0.0.1:4317",
            "ops.advertised_address" => "127.0.0.1:9000",
            _ => "x1",
        };
        let mut loader = ConfigLoader::new().environment_from(Vec::<(String, String)>::new());
        let mut set = 0;
        for setting in SETTINGS {
            let value = match setting.kind {
                Kind::Required => "127.0.0.1:9092".to_owned(),
                Kind::Text { value, .. } => value.unwrap_or(example(setting.key)).to_owned(),
                Kind::Number { default, .. } => default.to_string(),
                Kind::OptionalNumber { min, .. } => min.to_string(),
                Kind::Choice { choices } => choices[0].to_owned(),
                Kind::Prefix => continue,
            };
            loader = loader.flag(setting.key, value);
            set += 1;
        }
        assert!(set > 40, "only {set} settings declared");
        let problems = loader.load().err().map(|e| e.problems).unwrap_or_default();
        let unread: Vec<&String> = problems
            .iter()
            .filter(|p| p.starts_with("unknown key") || p.contains("no declaration"))
            .collect();
        assert!(unread.is_empty(), "{unread:#?}");
    }

    #[test]
    fn defaults_apply_and_layers_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("eddy.toml");
        std::fs::write(
            &file,
            "[processing]\ncommit_interval_ms = 300\nthreads = 2\n[kafka.properties]\n\"socket.timeout.ms\" = \"5000\"\n",
        )
        .unwrap();
        let config = base()
            .file(&file)
            .environment_from([
                ("EDDY__APPLICATION__ID", "app-1"),
                ("EDDY__KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
                ("EDDY__PROCESSING__THREADS", "3"),
                ("EDDY__KAFKA__PROPERTIES__CLIENT_RACK", "r1"),
            ])
            .flag("processing.threads", "4")
            .load()
            .unwrap();
        assert_eq!(
            config.processing.commit_interval,
            Duration::from_millis(300),
            "file over default"
        );
        assert_eq!(
            config.processing.threads, 4,
            "flag over environment over file"
        );
        assert_eq!(config.processing.guarantee, Guarantee::ExactlyOnce);
        assert_eq!(config.errors.deserialization, DeserializationHandler::Fail);
        assert_eq!(config.kafka.transaction_timeout, Duration::from_secs(10));
        assert_eq!(
            config
                .kafka
                .client_properties
                .get("socket.timeout.ms")
                .map(String::as_str),
            Some("5000")
        );
        assert_eq!(
            config
                .kafka
                .client_properties
                .get("client.rack")
                .map(String::as_str),
            Some("r1"),
            "environment property names map `_` to `.`"
        );
    }

    #[test]
    fn every_problem_is_listed_with_its_key_and_origin() {
        let err = ConfigLoader::new()
            .environment_from([
                ("EDDY__PROCESSING__COMMIT_INTERVAL_MS", "soon"),
                ("EDDY__PROCESSING__GUARANTEE", "maybe_once"),
                ("EDDY__PROCESSING__COMMIT_INTERVALL_MS", "100"),
                ("EDDY__ERRORS__DESERIALIZATION", "dead_letter"),
            ])
            .flag("application.id", "bad id")
            .load()
            .unwrap_err();
        let text = err.to_string();
        for needle in [
            "`kafka.bootstrap_servers` is required",
            "EDDY__KAFKA__BOOTSTRAP_SERVERS",
            "`processing.commit_interval_ms` = `soon`",
            "`processing.guarantee` = `maybe_once`",
            "unknown key `processing.commit_intervall_ms`",
            "needs `errors.dead_letter_topic`",
            "`application.id` = `bad id`",
        ] {
            assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
        }
        assert_eq!(err.problems.len(), 6, "{text}");
        assert!(text.contains("environment"), "origin named: {text}");
    }

    #[test]
    fn properties_exactly_once_depends_on_are_refused_naming_the_key() {
        let err = base()
            .environment_from([
                ("EDDY__APPLICATION__ID", "app-1"),
                ("EDDY__KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
                (
                    "EDDY__KAFKA__PROPERTIES__ISOLATION_LEVEL",
                    "read_uncommitted",
                ),
                ("EDDY__KAFKA__PROPERTIES__ENABLE_AUTO_COMMIT", "true"),
            ])
            .flag("kafka.properties.transactional.id", "mine")
            .flag("kafka.properties.socket.timeout.ms", "5000")
            .load()
            .unwrap_err();
        let text = err.to_string();
        for needle in [
            "`kafka.properties.isolation_level` (set by environment variable",
            "`kafka.properties.enable_auto_commit`",
            "`kafka.properties.transactional.id` (set by a command-line flag) cannot be set",
        ] {
            assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
        }
        assert_eq!(
            err.problems.len(),
            3,
            "socket.timeout.ms is allowed: {text}"
        );
    }

    #[test]
    fn secrets_never_show_in_errors_or_debug_output() {
        // librdkafka reports the first property it refuses, in no fixed order: one refusal.
        let err = base()
            .flag("kafka.properties.sasl.password", "hunter2-secret")
            .flag("kafka.properties.no.such.property", "hunter2-secret")
            .load()
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`kafka.properties.no.such.property` is refused"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        let settings = crate::kafka::KafkaSettings {
            client_properties: [("sasl.password".to_owned(), "hunter2-secret".to_owned())]
                .into_iter()
                .collect(),
            ..crate::kafka::KafkaSettings::new("127.0.0.1:9092")
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
        assert_eq!(
            settings.redact("Invalid value \"hunter2-secret\" for sasl.password"),
            "Invalid value \"<redacted>\" for sasl.password"
        );
    }

    #[test]
    fn topic_settings_and_the_processing_handler_parse() {
        let config = base()
            .flag("topics.replication_factor", "3")
            .flag("topics.min_insync_replicas", "2")
            .flag("errors.processing", "skip")
            .flag("processing.restart_deadline_ms", "5000")
            .load()
            .unwrap();
        assert_eq!(config.topics.replication_factor, Some(3));
        assert_eq!(config.topics.min_insync_replicas, Some(2));
        assert_eq!(config.errors.processing, RecordErrorHandler::Skip);
        assert_eq!(config.processing.restart_deadline, Duration::from_secs(5));
        let defaults = base().load().unwrap();
        assert_eq!(defaults.topics, TopicsConfig::default());
        assert_eq!(defaults.errors.processing, RecordErrorHandler::Fail);
        let err = base()
            .flag("topics.replication_factor", "2")
            .flag("topics.min_insync_replicas", "3")
            .flag("errors.processing", "dead_letter")
            .load()
            .unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(err
            .to_string()
            .contains("exceeds `topics.replication_factor`"));
        assert!(err
            .to_string()
            .contains("`errors.processing` = `dead_letter` needs"));
    }

    #[test]
    fn handlers_parse() {
        let config = base()
            .flag("errors.deserialization", "dead_letter")
            .flag("errors.dead_letter_topic", "dlq")
            .flag("processing.guarantee", "at_least_once")
            .load()
            .unwrap();
        assert_eq!(
            config.errors.deserialization,
            DeserializationHandler::DeadLetter("dlq".to_owned())
        );
        assert_eq!(config.processing.guarantee, Guarantee::AtLeastOnce);
    }
}
