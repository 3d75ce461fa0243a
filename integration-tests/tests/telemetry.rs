//! Telemetry of a real instance: OTLP/HTTP export of traces (a span per task and per commit)
//! and metrics to a receiver, and JSON logs.

use std::time::Duration;

use eddy_integration_tests::otlp::OtlpReceiver;
use eddy_integration_tests::{expected_counts, generate_lines, WordcountRun};

const WAIT: Duration = Duration::from_secs(120);

#[test]
fn an_instance_exports_spans_and_metrics_over_otlp_and_logs_json() -> anyhow::Result<()> {
    let receiver = OtlpReceiver::start()?;
    let run = WordcountRun::new("otel", 2)?;
    let lines = generate_lines(41, 500, 30);
    let words: u64 = expected_counts(lines.iter().map(String::as_str))
        .values()
        .sum();
    let mut app = run.start(
        "a",
        &[
            ("EDDY__TELEMETRY__OTLP_ENDPOINT", receiver.endpoint.as_str()),
            ("EDDY__TELEMETRY__EXPORT_INTERVAL_MS", "500"),
            ("EDDY__TELEMETRY__LOG_FORMAT", "json"),
            ("EDDY__TELEMETRY__SERVICE_NAME", "otel-test"),
        ],
    )?;
    run.produce_lines(&lines)?;
    run.kafka.tail(&run.output)?.wait_for(words, WAIT)?;

    #[allow(clippy::cast_precision_loss)]
    let processed = (lines.len() as u64 + words) as f64;
    receiver.wait_for("records-in metric covering the input", WAIT, |r| {
        r.max_sum("eddy.records.in").is_some_and(|n| n >= processed)
    })?;
    receiver.wait_for("commit spans", WAIT, |r| {
        r.span_names().iter().any(|n| n == "commit")
    })?;
    // Task spans end when their tasks close: on a clean shutdown, flushed before exit.
    app.terminate(Duration::from_secs(60))?;
    receiver.wait_for("task spans", Duration::from_secs(10), |r| {
        r.span_names().iter().filter(|n| *n == "task").count() >= 4
    })?;
    let service = receiver
        .exports()
        .iter()
        .filter(|e| e.path == "/v1/traces")
        .flat_map(|e| {
            e.body["resourceSpans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|r| {
            r["resource"]["attributes"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|a| a["key"] == "service.name")
        .map(|a| a["value"]["stringValue"].clone());
    assert_eq!(service, Some(serde_json::json!("otel-test")));

    // Every log line is one JSON object with a level and a message: the log format is under
    // test here.
    let log = app.log_text();
    let mut messages = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let record: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("log line is not JSON ({e}): {line}"))?;
        assert!(record["level"].is_string(), "{line}");
        messages.push(
            record["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    assert!(
        messages.iter().any(|m| m == "ops server listening"),
        "{messages:?}"
    );
    Ok(())
}

/// A log filter with a per-target directive keeps what the default level shows everywhere:
/// the start-up events outside any span too (a filter per layer dropped them).
#[test]
fn a_per_target_log_filter_keeps_start_up_events_and_adds_the_targets_debug() -> anyhow::Result<()>
{
    let run = WordcountRun::new("logfilter", 1)?;
    let mut app = run.start("a", &[("RUST_LOG", "info,eddy::runtime=debug")])?;
    // Every task of the instance runs: GET /ready answers 200.
    app.ops()
        .and_then(|ops| ops.wait_status("/ready", 200, WAIT))
        .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", app.log_tail(20)))?;
    app.terminate(Duration::from_secs(60))?;
    // The log is what is under test here: the lines the filter lets through.
    let log = app.log_text();
    for (level, message) in [
        ("INFO", "starting"),
        ("DEBUG", "timeline established"),
        ("DEBUG", "producer ready"),
        ("INFO", "SIGTERM: shutting down"),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains(level) && l.contains(message)),
            "no {level} `{message}` in the log:\n{log}"
        );
    }
    Ok(())
}
