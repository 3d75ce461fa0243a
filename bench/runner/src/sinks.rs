//! The PostgreSQL sinks' throughput: rows per second into an append table, through the
//! two-phase sink inside a topology and through the topic sink, from a pre-loaded topic.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use eddy_integration_tests::{eventually_every, on_timeout, workspace_binary};
use eddy_postgres::{Change, Table, TopicSink};

use crate::Options;

/// One sink's measurement.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SinkRun {
    /// `two-phase` or `topic`.
    pub mode: String,
    /// Rows written.
    pub rows: u64,
    /// From start to the last row visible, seconds (start-up included).
    pub seconds: f64,
    /// From the first row visible to the last, seconds.
    pub steady_seconds: f64,
}

impl SinkRun {
    /// Rows per second from the first row to the last.
    pub fn rows_per_second(&self) -> f64 {
        self.rows as f64 / self.steady_seconds.max(f64::EPSILON)
    }
}

/// Measures both sinks `options.repeats` times with `options.records` records each.
///
/// # Errors
/// PostgreSQL, Kafka or a process fails, or the rows do not all arrive within 10 minutes.
pub fn run(options: &Options, out: &mut dyn Write) -> anyhow::Result<Vec<SinkRun>> {
    let kafka = eddy_testkit::Kafka::shared()?;
    let url = eddy_testkit::postgres_url()?;
    let records = options.records as u64;
    let topic = eddy_testkit::unique_name("bench-rows");
    kafka.create_topic(&topic, options.partitions)?;
    kafka.produce(
        &topic,
        (0..records).map(|i| {
            (
                Some(format!("k{i}").into_bytes()),
                i.to_string().into_bytes(),
            )
        }),
    )?;
    let mut runs = Vec::new();
    for repeat in 0..options.repeats {
        for mode in ["two-phase", "topic"] {
            let mut db = postgres::Client::connect(&url, postgres::NoTls)?;
            let table = eddy_testkit::unique_name("bench_rows").replace('-', "_");
            db.batch_execute(&format!(
                "CREATE TABLE {table} (k text NOT NULL, v bigint NOT NULL)"
            ))?;
            let started = Instant::now();
            let stop = Arc::new(AtomicBool::new(false));
            let mut child = None;
            let mut thread = None;
            if mode == "two-phase" {
                let state = tempfile_dir(&options.out_dir, &table)?;
                child = Some(
                    Command::new(workspace_binary("bench-pg-sink")?)
                        .env("EDDY__APPLICATION__ID", &table)
                        .env("EDDY__KAFKA__BOOTSTRAP_SERVERS", kafka.bootstrap_servers())
                        .env("EDDY__APP__INPUT_TOPIC", &topic)
                        .env("EDDY__APP__OUTPUT_TOPIC", &topic)
                        .env("EDDY__STATE__DIR", &state)
                        .env("EDDY__OPS__ADDRESS", "off")
                        .env("PG_URL", &url)
                        .env("PG_TABLE", &table)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::from(std::fs::File::create(
                            state.with_extension("log"),
                        )?))
                        .spawn()?,
                );
            } else {
                let sink = TopicSink::new(
                    &table,
                    &url,
                    &topic,
                    kafka.bootstrap_servers(),
                    Table::append(&table, &["k", "v"])?,
                    eddy::serde::StringSerde,
                    eddy::serde::StringSerde,
                    |k: &String, v: &String| {
                        Some(Change::Row(vec![
                            k.as_str().into(),
                            v.parse::<i64>().unwrap_or(-1).into(),
                        ]))
                    },
                )?;
                let stop = Arc::clone(&stop);
                thread = Some(std::thread::spawn(move || sink.run(&stop)));
            }
            let (mut first, mut finished, mut n) = (None, None, 0_i64);
            // The row count is polled every 20 ms, the resolution of the figures.
            let deadline = Duration::from_secs(600).saturating_sub(started.elapsed());
            let step = Duration::from_millis(20);
            let waited = eventually_every("every row", deadline, step, || {
                n = db
                    .query_one(&format!("SELECT count(*) FROM {table}"), &[])?
                    .get(0);
                if n > 0 && first.is_none() {
                    first = Some(Instant::now());
                }
                if u64::try_from(n)? >= records {
                    finished = Some(Instant::now());
                }
                Ok(finished.is_some())
            });
            // The wait's own errors return at once; running out of time is reported below,
            // after the sink is stopped.
            let finished = on_timeout(waited.map(|()| finished), || Ok(None))?.ok_or_else(|| {
                anyhow::anyhow!("{mode} sink: {n} of {records} rows after 10 minutes")
            });
            stop.store(true, Ordering::Relaxed);
            if let Some(mut c) = child {
                c.kill()?;
                c.wait()?;
            }
            if let Some(t) = thread {
                t.join()
                    .map_err(|_| anyhow::anyhow!("the topic sink panicked"))??;
            }
            let finished = finished?;
            let run = SinkRun {
                mode: mode.to_owned(),
                rows: records,
                seconds: (finished - started).as_secs_f64(),
                steady_seconds: (finished - first.unwrap_or(started)).as_secs_f64(),
            };
            writeln!(
                out,
                "sink {mode} (repeat {}): {} rows in {:.1} s, {:.0} rows/s after the first row",
                repeat + 1,
                run.rows,
                run.seconds,
                run.rows_per_second()
            )?;
            db.batch_execute(&format!("DROP TABLE {table}"))?;
            runs.push(run);
        }
    }
    Ok(runs)
}

/// A fresh state directory for one run under `out`.
fn tempfile_dir(out: &std::path::Path, name: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = out.join("sinks").join(name);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The sinks' section of the report: median rows/s per mode.
pub fn markdown(runs: &[SinkRun]) -> String {
    if runs.is_empty() {
        return String::new();
    }
    let mut text = String::from(
        "\n## PostgreSQL sinks\n\nRows per second into an append table on the local PostgreSQL (fsync on), from a pre-loaded topic, after the first row (median of the repeats; start-up excluded).\n\n| sink | rows | rows/s (median) | all runs |\n|---|---:|---:|---|\n",
    );
    for mode in ["two-phase", "topic"] {
        let mut rates: Vec<f64> = runs
            .iter()
            .filter(|r| r.mode == mode)
            .map(SinkRun::rows_per_second)
            .collect();
        if rates.is_empty() {
            continue;
        }
        rates.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        let all: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        let rows = runs.iter().find(|r| r.mode == mode).map_or(0, |r| r.rows);
        text.push_str(&format!(
            "| {mode} | {rows} | {median:.0} | {} |\n",
            all.join(", ")
        ));
    }
    text
}
