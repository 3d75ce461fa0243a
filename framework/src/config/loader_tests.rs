//! Unit tests of the configuration loader.

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
use crate::config::{DeserializationHandler, RecordErrorHandler};

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
