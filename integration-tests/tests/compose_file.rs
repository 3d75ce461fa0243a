//! compose/docker-compose.yml stays configured like the local no-Docker broker.
//!
//! Docker does not run on the development machines, so this parses the file and compares its
//! broker settings with what `compose/local/kafka.sh print-config` writes for a local broker.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde_yaml_ng::Value;

/// Settings that differ by nature between a container and local processes.
const PLACEMENT_KEYS: &[&str] = &[
    "listeners",
    "advertised.listeners",
    "controller.quorum.voters",
    "listener.security.protocol.map",
    "log.dirs",
];

fn repo_root() -> PathBuf {
    eddy_testkit::repository_root()
}

fn local_broker_config() -> BTreeMap<String, String> {
    let output = Command::new("bash")
        .arg(repo_root().join("compose/local/kafka.sh"))
        .args(["print-config", "1", "1"])
        .output()
        .unwrap_or_else(|e| panic!("running compose/local/kafka.sh print-config: {e}"));
    assert!(output.status.success(), "print-config failed: {output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Maps the official image's `KAFKA_SOME_KEY` variables to `some.key` properties.
fn compose_broker_config(doc: &Value) -> BTreeMap<String, String> {
    let env = doc["services"]["kafka"]["environment"]
        .as_mapping()
        .unwrap_or_else(|| panic!("services.kafka.environment must be a mapping"));
    env.iter()
        .filter_map(|(k, v)| {
            let key = k.as_str()?.strip_prefix("KAFKA_")?;
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((key.to_lowercase().replace('_', "."), value))
        })
        .collect()
}

fn compose_doc() -> Value {
    let path = repo_root().join("compose/docker-compose.yml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

#[test]
fn compose_broker_settings_match_the_local_broker() {
    let local = local_broker_config();
    let compose = compose_broker_config(&compose_doc());
    assert!(
        local.len() > 15,
        "print-config returned too little: {local:?}"
    );
    let mut mismatches = Vec::new();
    for (key, value) in &local {
        if PLACEMENT_KEYS.contains(&key.as_str()) {
            continue;
        }
        match compose.get(key) {
            Some(v) if v == value => {}
            Some(v) => mismatches.push(format!("{key}: compose {v}, local {value}")),
            None => mismatches.push(format!("{key}: missing in compose, local {value}")),
        }
    }
    assert!(
        mismatches.is_empty(),
        "docker-compose.yml drifted from compose/local/kafka.sh:\n{}",
        mismatches.join("\n")
    );
}

#[test]
fn compose_uses_the_pinned_kafka_version_and_a_scalable_app() {
    let doc = compose_doc();
    let pom = std::fs::read_to_string(repo_root().join("compose/local/kafka/pom.xml"))
        .unwrap_or_else(|e| panic!("reading pom.xml: {e}"));
    let version = pom
        .split("<kafka.version>")
        .nth(1)
        .and_then(|rest| rest.split("</kafka.version>").next())
        .unwrap_or_else(|| panic!("pom.xml has no kafka.version"));
    let image = doc["services"]["kafka"]["image"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(
        image,
        format!("apache/kafka:{version}"),
        "compose and local Kafka versions differ"
    );
    let replicas = doc["services"]["app"]["deploy"]["replicas"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        replicas >= 2,
        "the example app service must run several replicas, has {replicas}"
    );
}

#[test]
fn the_compose_app_configuration_is_valid_eddy_configuration() {
    let doc = compose_doc();
    let env = doc["services"]["app"]["environment"]
        .as_mapping()
        .unwrap_or_else(|| panic!("the app service has no environment mapping"));
    let vars: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().unwrap_or_default().to_owned(),
                v.as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let config = eddy::config::ConfigLoader::new()
        .environment_from(vars)
        .load()
        .unwrap_or_else(|e| panic!("compose app configuration rejected: {e}"));
    assert_eq!(config.application.id, "wordcount");
    assert_eq!(config.app_setting("input_topic"), Some("lines"));
    assert_eq!(config.app_setting("output_topic"), Some("word-counts"));
    // Snapshots go to the compose file's S3 service, into the bucket its set-up job makes.
    let Some(eddy::snapshot::StoreLocation::S3 { bucket, .. }) = &config.snapshot.dir else {
        panic!(
            "the app keeps its snapshots elsewhere: {:?}",
            config.snapshot.dir
        );
    };
    let made = doc["services"]["s3-bucket"]["command"][0]
        .as_str()
        .unwrap_or_default();
    assert!(made.contains(&format!("local/{bucket}")), "{made}");
    assert_eq!(
        config.snapshot.s3.endpoint.as_deref(),
        Some("http://s3:9000")
    );
}

#[test]
fn compose_runs_the_registry_and_the_telemetry_pipeline_the_app_exports_to() {
    let doc = compose_doc();
    for service in [
        "schema-registry",
        "postgres",
        "s3",
        "otel-collector",
        "prometheus",
        "jaeger",
        "app",
    ] {
        assert!(
            doc["services"][service].is_mapping(),
            "compose has no `{service}` service"
        );
    }
    let env = &doc["services"]["app"]["environment"];
    let endpoint = env["EDDY__TELEMETRY__OTLP_ENDPOINT"]
        .as_str()
        .unwrap_or_default();
    assert_eq!(endpoint, "http://otel-collector:4318");
    let ops = env["EDDY__OPS__ADDRESS"].as_str().unwrap_or_default();
    let ops_port = ops.rsplit(':').next().unwrap_or_default();

    // The collector listens where the app exports, and sends traces to Jaeger and metrics to
    // the port Prometheus scrapes.
    let read = |name: &str| -> Value {
        let path = repo_root().join("compose").join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("parsing {name}: {e}"))
    };
    let collector = read("otel-collector.yaml");
    assert_eq!(
        collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].as_str(),
        Some("0.0.0.0:4318")
    );
    assert_eq!(
        collector["exporters"]["otlp/jaeger"]["endpoint"].as_str(),
        Some("jaeger:4317")
    );
    let prometheus_port = collector["exporters"]["prometheus"]["endpoint"]
        .as_str()
        .and_then(|e| e.rsplit(':').next())
        .unwrap_or_default()
        .to_owned();
    let prometheus = read("prometheus.yml");
    let jobs = prometheus["scrape_configs"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    let scrapes_app = jobs.iter().any(|job| {
        job["dns_sd_configs"][0]["names"][0].as_str() == Some("app")
            && job["dns_sd_configs"][0]["port"]
                .as_u64()
                .map(|p| p.to_string())
                .as_deref()
                == Some(ops_port)
    });
    assert!(
        scrapes_app,
        "Prometheus must scrape every app instance's ops port {ops_port}"
    );
    let scrapes_collector = jobs.iter().any(|job| {
        job["static_configs"][0]["targets"][0].as_str()
            == Some(&format!("otel-collector:{prometheus_port}"))
    });
    assert!(
        scrapes_collector,
        "Prometheus must scrape the collector's exporter"
    );
}

#[test]
fn compose_postgres_allows_prepared_transactions() {
    let doc = compose_doc();
    let command: Vec<&str> = doc["services"]["postgres"]["command"]
        .as_sequence()
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let prepared = command
        .iter()
        .find_map(|c| c.strip_prefix("max_prepared_transactions="))
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    assert!(
        prepared > 0,
        "two-phase sinks need max_prepared_transactions > 0: {command:?}"
    );
}
