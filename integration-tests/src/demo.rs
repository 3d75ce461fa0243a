//! The demo `make demo` runs: 3 wordcount instances under a steady load; one is killed with
//! SIGKILL, another joins; then the output is checked for exactly-once and a few live metrics
//! and state queries are shown.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::load::SteadyLoad;
use crate::ops::OpsClient;
use crate::{expected_counts, AppProcess, WordcountRun};

/// Lines per input chunk, and the pause between chunks.
const CHUNK: usize = 100;
const TICK: Duration = Duration::from_millis(100);

/// What the demo found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoSummary {
    /// Input lines produced.
    pub lines: usize,
    /// Output records, one per word occurrence.
    pub outputs: u64,
    /// Distinct words.
    pub words: usize,
}

fn say(out: &mut dyn Write, started: Instant, line: &str) {
    let _ = writeln!(out, "[{:>5.1}s] {line}", started.elapsed().as_secs_f64());
    let _ = out.flush();
}

fn metric(client: &OpsClient, name: &str) -> anyhow::Result<f64> {
    Ok(client.samples(name)?.iter().map(|s| s.value).sum())
}

/// The demo's failure `error`, with where each partition stands, the last lines of each
/// live instance's log, and where the whole logs are kept (the run's directory is kept).
fn failed(
    run: WordcountRun,
    apps: Vec<AppProcess>,
    error: impl std::fmt::Display,
) -> anyhow::Error {
    let standing =
        crate::progress::report_run(run.kafka, &run.application_id, &run.input, &run.output);
    let tails: Vec<String> = apps
        .iter()
        .map(|a| format!("--- {} (last lines):\n{}", a.name(), a.log_tail(15)))
        .collect();
    drop(apps);
    let kept = run.dir.keep();
    anyhow::anyhow!(
        "{error}\n{standing}{}\nthe instances' logs are kept in {}",
        tails.join("\n"),
        kept.display()
    )
}

/// Runs the demo against the shared test broker, writing its story to `out`.
///
/// # Errors
/// Any step fails, or the output is not exactly once.
pub fn run(out: &mut dyn Write) -> anyhow::Result<DemoSummary> {
    let started = Instant::now();
    let run = WordcountRun::new("demo", 6)?;
    let store = run.dir.path().join("snapshots").display().to_string();
    let env = [
        ("EDDY__SNAPSHOT__DIR", store.as_str()),
        ("EDDY__SNAPSHOT__CHECKPOINT_INTERVAL_MS", "2000"),
    ];
    say(
        out,
        started,
        &format!(
            "Kafka at {}; topics `{}` → `{}` (6 partitions)",
            run.kafka.bootstrap_servers(),
            run.input,
            run.output
        ),
    );
    let mut apps: Vec<AppProcess> = Vec::new();
    for name in ["a", "b", "c"] {
        apps.push(run.start(name, &env)?);
    }
    for app in &apps {
        app.ops()?
            .wait_status("/ready", 200, Duration::from_secs(120))?;
    }
    say(
        out,
        started,
        "3 instances of wordcount are ready (GET /ready = 200 on each)",
    );

    let load = SteadyLoad::start(run.kafka, &run.input, 7_000, CHUNK, 300, TICK);
    say(out, started, "feeding lines in chunks of 100");
    let wait_until = |at: Duration| {
        while started.elapsed() < at {
            crate::pace(at.saturating_sub(started.elapsed())); // the demo's own timeline
        }
    };
    wait_until(Duration::from_secs(8));
    apps[1].kill9()?;
    apps.remove(1);
    say(
        out,
        started,
        "kill -9 instance b: its tasks move to a and c, its open transaction is fenced",
    );
    wait_until(Duration::from_secs(14));
    apps.push(run.start("d", &env)?);
    let d = apps.last().context("instance d")?.ops()?;
    d.wait_status("/ready", 200, Duration::from_secs(120))?;
    say(
        out,
        started,
        "instance d joined and is ready: it took tasks over from checkpoints",
    );
    wait_until(Duration::from_secs(20));
    let produced = load.stop()?;
    let expected = expected_counts(produced.iter().map(String::as_str));
    let outputs: u64 = expected.values().sum();
    say(
        out,
        started,
        &format!(
            "stopped feeding after {} lines ({outputs} words)",
            produced.len()
        ),
    );
    if let Err(e) = run
        .kafka
        .tail(&run.output)?
        .wait_for(outputs, Duration::from_secs(300))
    {
        return Err(failed(run, apps, e));
    }

    say(
        out,
        started,
        "live metrics (GET /metrics on each instance):",
    );
    let _ = writeln!(
        out,
        "    instance  records-in  commits  aborts  lag  rocksdb-bytes"
    );
    let clients: Vec<(String, OpsClient)> = apps
        .iter()
        .map(|a| Ok((a.name().to_owned(), a.ops()?)))
        .collect::<anyhow::Result<_>>()?;
    for (name, client) in &clients {
        let _ = writeln!(
            out,
            "    {name:<8}  {:>10}  {:>7}  {:>6}  {:>3}  {:>13}",
            metric(client, "eddy_records_in_total")?,
            metric(client, "eddy_transactions_committed_total")?,
            metric(client, "eddy_transactions_aborted_total")?,
            metric(client, "eddy_consumer_lag_records")?,
            metric(client, "eddy_rocksdb_memory_bytes")?,
        );
    }
    let mut top: Vec<(&String, &u64)> = expected.iter().collect();
    top.sort_by(|x, y| y.1.cmp(x.1).then(x.0.cmp(y.0)));
    say(
        out,
        started,
        "state queries (GET /state/counts/{word} on instance a, forwarded to the owner):",
    );
    for (word, count) in top.iter().take(3) {
        let (status, body) = clients[0].1.get_json(&format!("/state/counts/{word}"))?;
        let value = body["value"].as_u64();
        if status != 200 || value != Some(**count) {
            let _ = writeln!(
                out,
                "MISMATCH state of `{word}`: expected {count}, got {status} {body}"
            );
        }
        let _ = writeln!(
            out,
            "    {word:<10} = {count:<5} (answered by instance {})",
            body["instance_id"].as_str().unwrap_or("?")
        );
    }
    let guarded = apps
        .iter()
        .filter(|a| a.log_text().contains("skipping to it"))
        .count();
    if guarded > 0 {
        say(out, started, &format!(
            "{guarded} instance(s) were handed a partition positioned below its committed offset and skipped to the committed offset"
        ));
    }
    if let Err(e) = run.finish_exactly(&mut apps, &expected) {
        return Err(failed(run, apps, e));
    }
    say(out, started, &format!(
        "exactly-once: verified. {outputs} outputs for {} words: every word's counts run 1..n with no repeat and no gap, no transaction left open",
        expected.len()
    ));
    Ok(DemoSummary {
        lines: produced.len(),
        outputs,
        words: expected.len(),
    })
}
