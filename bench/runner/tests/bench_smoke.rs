//! `make bench` at a tiny scale, so the benchmark keeps working: the Kafka Streams side builds
//! with Maven, every system runs every workload, both large-state instances come back after
//! kill -9, wordcount rescales under both group protocols, and the report holds a figure for
//! each.

use std::process::Command;

#[test]
fn the_benchmark_runs_every_system_and_writes_its_report() -> anyhow::Result<()> {
    let kafka = eddy_testkit::Kafka::shared()?;
    let root = eddy_testkit::repository_root();
    let maven = Command::new("mvn")
        .args(["-q", "-B", "-Dstyle.color=never", "-f"])
        .arg(root.join("bench/kafka-streams/pom.xml"))
        .args(["package", "-DskipTests"])
        .output()?;
    assert!(maven.status.success(), "mvn package failed: {maven:?}");
    let out = tempfile::tempdir()?;
    let bench = Command::new(env!("CARGO_BIN_EXE_eddy-bench"))
        .args([
            "--records",
            "3000",
            "--repeats",
            "1",
            "--latency-seconds",
            "2",
            "--state-mb",
            "5",
            "--out",
        ])
        .arg(out.path())
        .env("EDDY_BOOTSTRAP_SERVERS", kafka.bootstrap_servers())
        .output()?;
    let stdout = String::from_utf8_lossy(&bench.stdout);
    assert!(
        bench.status.success(),
        "eddy-bench failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&bench.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json"))?)?;
    let summaries = report["summaries"].as_array().cloned().unwrap_or_default();
    // passthrough: 3 systems × 2 guarantees; wordcount, windowed and join: 2 systems × 2
    // guarantees each.
    assert_eq!(summaries.len(), 18, "{report}");
    for s in &summaries {
        for figure in [
            "records_per_second",
            "records_per_cpu_second",
            "peak_rss_mib",
        ] {
            assert!(
                s[figure]["median"].as_f64().is_some_and(|v| v > 0.0),
                "{figure} in {s}"
            );
        }
    }
    // Recovery after kill -9: both systems built their state and came back once.
    let recovery = report["recovery"].as_array().cloned().unwrap_or_default();
    let systems: Vec<&str> = recovery
        .iter()
        .filter_map(|r| r["system"].as_str())
        .collect();
    assert_eq!(systems, ["eddy", "kafka-streams"], "{report}");
    for r in &recovery {
        let seconds = r["recovery_seconds"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(seconds.len(), 1, "{r}");
        assert!(seconds[0].as_f64().is_some_and(|s| s > 0.0), "{r}");
        assert!(r["keys"].as_u64().is_some_and(|k| k > 0), "{r}");
    }
    // Rescaling: one run per group protocol, each with the steady part and three steps;
    // `auto` takes the consumer protocol from the local broker, `classic` stays classic.
    let rescale = report["rescale"].as_array().cloned().unwrap_or_default();
    let chosen: Vec<(&str, &str)> = rescale
        .iter()
        .filter_map(|r| Some((r["protocol"].as_str()?, r["chosen"].as_str()?)))
        .collect();
    assert_eq!(
        chosen,
        [("auto", "consumer"), ("classic", "classic")],
        "{report}"
    );
    for r in &rescale {
        let pauses = r["pauses"].as_array().cloned().unwrap_or_default();
        assert_eq!(pauses.len(), 4, "{r}");
        assert!(
            pauses
                .iter()
                .all(|p| p[1].as_f64().is_some_and(|s| s > 0.0)),
            "{r}"
        );
    }
    let markdown = std::fs::read_to_string(out.path().join("report.md"))?;
    assert!(markdown.contains("Rescaling under load"), "{markdown}");
    assert!(markdown.contains("Recovery after kill -9"), "{markdown}");
    assert!(markdown.contains("eddy / kafka-streams"), "{markdown}");
    assert!(markdown.contains("eddy / raw"), "{markdown}");
    Ok(())
}
