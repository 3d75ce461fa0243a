//! `make bench`: Eddy against Kafka Streams and a raw librdkafka loop on the same broker, the
//! same pre-loaded input and the same commit interval, alternating systems between repeats.
//!
//! Each run starts one process with a fresh application id and output topic, waits for the
//! first output record (start-up) and for the last (processing), and reads the process's CPU
//! time and peak RSS from `/proc` before stopping it. A second process of the same case then
//! gets an empty input topic fed at a fixed rate, for end-to-end latency.

pub mod latency;
pub mod memory_split;
pub mod process;
pub mod recovery;
pub mod recovery_phases;
pub mod report;
pub mod rescale;
pub mod restore;
pub mod sinks;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::{Rng, SeedableRng};

use eddy_integration_tests::{expected_counts, generate_lines, workspace_binary};
use report::Run;

/// `app.input_topic` and `app.output_topic` of a benchmarked Eddy app's configuration.
///
/// # Errors
/// One of them is not set.
pub fn app_topics(config: &eddy::config::EddyConfig) -> anyhow::Result<(String, String)> {
    let setting = |key: &str| {
        config
            .app_setting(key)
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("`app.{key}` is required"))
    };
    Ok((setting("input_topic")?, setting("output_topic")?))
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Input lines pre-loaded once.
    pub records: usize,
    /// Partitions of the input and output topics.
    pub partitions: i32,
    /// Repeats of every measurement.
    pub repeats: usize,
    /// `target` directory of the Kafka Streams build (`bench/kafka-streams/target`).
    pub kafka_streams: PathBuf,
    /// Where logs and the report go.
    pub out_dir: PathBuf,
    /// Input lines per second of the latency phase (below every system's saturation).
    pub rate: u32,
    /// How long the latency phase sends input.
    pub latency_duration: Duration,
    /// Bytes of keys and values each system's large-state instance holds before it is killed
    /// (0 = no recovery measurement).
    pub state_bytes: u64,
    /// Bytes of state of the one-store restore measurement (0 = none).
    pub restore_bytes: u64,
    /// Bytes of every value of the large state.
    pub value_bytes: usize,
    /// Whether to run the throughput, resource and latency measurements.
    pub throughput: bool,
    /// Whether to measure the PostgreSQL sinks' rows per second.
    pub sinks: bool,
    /// Whether to measure rescaling's pauses (`rescale`).
    pub rescale: bool,
    /// The systems measured (a subset of `eddy`, `kafka-streams`, `raw`).
    pub systems: Vec<String>,
    /// The workloads measured (a subset of `passthrough`, `wordcount`).
    pub workloads: Vec<String>,
}

/// The systems compared, in the order of even repeats (odd repeats reverse it).
pub const SYSTEMS: [&str; 3] = ["eddy", "kafka-streams", "raw"];

/// The throughput workloads: the stateless and word-count ones over lines, the windowed
/// aggregation and the stream-table join over clicks.
pub const WORKLOADS: [&str; 4] = ["passthrough", "wordcount", "windowed", "join"];

/// Users the clicks of the `windowed` and `join` workloads come from (and rows of the users
/// table): about ten clicks per user and one-second window.
pub const USERS: usize = 100;

/// The topic holding the users table that the `join` workload over clicks topic `clicks`
/// reads.
pub fn users_topic(clicks: &str) -> String {
    format!("{clicks}-users")
}

/// The key of the `i`-th click.
fn user_of(i: usize) -> String {
    format!("user-{}", i % USERS)
}

/// Loads the users table of clicks topic `clicks` (region per user), stamped before every
/// click so that both systems read it first.
fn load_users(kafka: &eddy_testkit::Kafka, clicks: &str, at: i64) -> anyhow::Result<()> {
    kafka.produce_at(
        &users_topic(clicks),
        (0..USERS).map(|u| {
            (
                Some(user_of(u).into_bytes()),
                format!("region-{}", u % 10).into_bytes(),
                at,
            )
        }),
    )?;
    Ok(())
}

/// A partition's stream time and its windows `(user, start)`.
type PartitionWindows = (i64, std::collections::BTreeSet<(Vec<u8>, i64)>);

/// The input of the clicks workloads: `records` clicks of random users, one millisecond of
/// event time apart (the record timestamp) and ending a minute ago; the value `p<i>` names the
/// click. Returns the topic and the number of one-second windows per user that a final-only
/// windowed count emits (those that end at or before their partition's last click).
fn load_clicks(
    kafka: &eddy_testkit::Kafka,
    records: usize,
    partitions: i32,
) -> anyhow::Result<(String, u64)> {
    let topic = eddy_testkit::unique_name("bench-clicks");
    kafka.create_topic(&topic, partitions)?;
    kafka.create_topic(&users_topic(&topic), partitions)?;
    #[allow(clippy::cast_possible_wrap)] // record counts far below 2^63
    let base = eddy::record::wall_clock_ms() - 60_000 - records as i64;
    load_users(kafka, &topic, base - 1)?;
    // A fixed sequence of users: every run sees the same input.
    let mut rng = rand::rngs::StdRng::seed_from_u64(2_026);
    let users: Vec<usize> = (0..records).map(|_| rng.random_range(0..USERS)).collect();
    #[allow(clippy::cast_possible_wrap)]
    kafka.produce_at(
        &topic,
        users.iter().enumerate().map(|(i, &u)| {
            (
                Some(user_of(u).into_bytes()),
                format!("p{i}").into_bytes(),
                base + i as i64,
            )
        }),
    )?;
    // Final windows, per partition: a window ends at or before the partition's stream time.
    let mut by_partition: std::collections::BTreeMap<i32, PartitionWindows> =
        std::collections::BTreeMap::new();
    for r in kafka.read_all(&topic, eddy_testkit::Isolation::ReadUncommitted)? {
        let i: i64 = r
            .value_str()
            .trim_start_matches('p')
            .parse()
            .with_context(|| format!("click value {:?}", r.value_str()))?;
        let at = base + i;
        let entry = by_partition.entry(r.partition).or_default();
        entry.0 = entry.0.max(at);
        entry
            .1
            .insert((r.key.unwrap_or_default(), at - at.rem_euclid(1_000)));
    }
    let windows = by_partition
        .values()
        .map(|(time, windows)| {
            windows
                .iter()
                .filter(|(_, start)| start + 1_000 <= *time)
                .count()
        })
        .sum::<usize>();
    Ok((topic, windows as u64))
}

/// The guarantees measured.
const GUARANTEES: [&str; 2] = ["exactly_once", "at_least_once"];

pub(crate) struct Case<'a> {
    system: &'a str,
    workload: &'a str,
    guarantee: &'a str,
}

/// Runs every measurement, writing progress to `out`; returns the runs.
///
/// # Errors
/// The broker, a build or a process fails, or a run does not finish in 30 minutes.
pub fn run(options: &Options, out: &mut dyn Write) -> anyhow::Result<Vec<Run>> {
    let kafka = eddy_testkit::Kafka::shared()?;
    std::fs::create_dir_all(&options.out_dir)?;
    if !options.throughput {
        return Ok(Vec::new());
    }
    let wanted = |w: &str| options.workloads.iter().any(|o| o == w);
    let mut lines_input = None;
    if wanted("passthrough") || wanted("wordcount") {
        let input = eddy_testkit::unique_name("bench-lines");
        kafka.create_topic(&input, options.partitions)?;
        let lines = generate_lines(2_026, options.records, 10_000);
        let words: u64 = expected_counts(lines.iter().map(String::as_str))
            .values()
            .sum();
        let loading = Instant::now();
        kafka.produce(&input, lines.iter().map(|l| (None, l.as_bytes().to_vec())))?;
        let _ = writeln!(
            out,
            "input: {} lines ({words} words) in `{input}`, {} partitions, loaded in {:.1} s",
            lines.len(),
            options.partitions,
            loading.elapsed().as_secs_f64()
        );
        lines_input = Some((input, lines.len() as u64, words));
    }
    let mut clicks_input = None;
    if wanted("windowed") || wanted("join") {
        let loading = Instant::now();
        let (topic, windows) = load_clicks(kafka, options.records, options.partitions)?;
        let _ = writeln!(
            out,
            "input: {} clicks of {USERS} users ({windows} final one-second windows) in `{topic}`, {} partitions, loaded in {:.1} s",
            options.records,
            options.partitions,
            loading.elapsed().as_secs_f64()
        );
        clicks_input = Some((topic, options.records as u64, windows));
    }
    let mut runs = Vec::new();
    for repeat in 0..options.repeats {
        let mut systems: Vec<&str> = SYSTEMS
            .into_iter()
            .filter(|s| options.systems.iter().any(|o| o == s))
            .collect();
        if repeat % 2 == 1 {
            systems.reverse();
        }
        for workload in WORKLOADS
            .into_iter()
            .filter(|w| options.workloads.iter().any(|o| o == w))
        {
            for guarantee in GUARANTEES {
                for &system in &systems {
                    // The raw loop is the physical reference for the stateless workload.
                    if system == "raw" && workload != "passthrough" {
                        continue;
                    }
                    let case = Case {
                        system,
                        workload,
                        guarantee,
                    };
                    // (input topic, input records, output records)
                    let (input, records, expected) = match (workload, &lines_input, &clicks_input) {
                        ("passthrough", Some((topic, lines, _)), _) => (topic, *lines, *lines),
                        ("wordcount", Some((topic, lines, words)), _) => (topic, *lines, *words),
                        ("windowed", _, Some((topic, clicks, windows))) => {
                            (topic, *clicks, *windows)
                        }
                        (_, _, Some((topic, clicks, _))) => (topic, *clicks, *clicks),
                        _ => anyhow::bail!("no input loaded for {workload}"),
                    };
                    let run = measure(options, kafka, input, &case, expected, records)?;
                    let _ = writeln!(
                        out,
                        "repeat {} {workload:<11} {guarantee:<13} {system:<13} {:>9.0} records/s {:>9.0} records/CPU-s {:>5} MiB peak, start-up {:.2} s, latency p50 {:.0} ms p99 {:.0} ms (worst: {})",
                        repeat + 1,
                        run.records_per_second,
                        run.records_per_cpu_second,
                        run.peak_rss_bytes / (1024 * 1024),
                        run.startup_seconds,
                        run.latency_p50_ms,
                        run.latency_p99_ms,
                        latency::describe_worst(&run.latency_worst),
                    );
                    runs.push(run);
                }
            }
        }
    }
    Ok(runs)
}

fn measure(
    options: &Options,
    kafka: &'static eddy_testkit::Kafka,
    input: &str,
    case: &Case<'_>,
    expected: u64,
    records: u64,
) -> anyhow::Result<Run> {
    let name = format!("{}-{}-{}", case.system, case.workload, case.guarantee);
    let app = eddy_testkit::unique_name(&format!("bench-{name}"));
    let output = format!("{app}-out");
    kafka.create_topic(&output, options.partitions)?;
    let mut command = command_for(options, kafka, case, &app, input, &output)?;
    let eddy = case.system == "eddy";
    if eddy {
        // Its memory by part is read from /metrics while it processes.
        command.env("EDDY__OPS__ADDRESS", "127.0.0.1:0");
    }
    let mut tail = kafka.tail(&output)?;
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let sampler = eddy.then(|| memory_split::MemorySampler::start(&state_dir(options, &app), &app));
    let finished = (|| -> anyhow::Result<(Duration, Duration, process::ProcessCost)> {
        tail.wait_for(1, Duration::from_secs(300))?;
        let first = started.elapsed();
        tail.wait_for(expected, Duration::from_secs(1_800))?;
        let done = started.elapsed();
        Ok((first, done, process::cost(child.id())?))
    })();
    let memory = sampler.and_then(memory_split::MemorySampler::finish);
    let _ = child.kill();
    let _ = child.wait();
    remove_state(options, &app);
    let (first, done, cost) =
        finished.with_context(|| format!("{name} (log in {})", options.out_dir.display()))?;
    let latency = measure_latency(options, kafka, case)
        .with_context(|| format!("{name}: latency (logs in {})", options.out_dir.display()))?;
    let processing = (done - first).as_secs_f64().max(1e-3);
    #[allow(clippy::cast_precision_loss)] // record counts far below 2^52
    let records = records as f64;
    Ok(Run {
        system: case.system.to_owned(),
        workload: case.workload.to_owned(),
        guarantee: case.guarantee.to_owned(),
        records: records as u64,
        startup_seconds: first.as_secs_f64(),
        processing_seconds: processing,
        records_per_second: records / processing,
        records_per_cpu_second: records / cost.cpu_seconds.max(1e-3),
        peak_rss_bytes: cost.peak_rss_bytes,
        latency_p50_ms: latency.p50_ms,
        latency_p99_ms: latency.p99_ms,
        latency_worst: latency.worst.clone(),
        memory,
    })
}

/// Runs `case` on a fresh, empty input topic, waits until it answers one warm-up line, then
/// feeds it `options.rate` lines per second and measures end-to-end latency.
fn measure_latency(
    options: &Options,
    kafka: &'static eddy_testkit::Kafka,
    case: &Case<'_>,
) -> anyhow::Result<latency::Latency> {
    let app = eddy_testkit::unique_name(&format!(
        "latency-{}-{}-{}",
        case.system, case.workload, case.guarantee
    ));
    let input = format!("{app}-in");
    let output = format!("{app}-out");
    kafka.create_topic(&input, options.partitions)?;
    kafka.create_topic(&output, options.partitions)?;
    let clicks = matches!(case.workload, "windowed" | "join");
    if clicks {
        kafka.create_topic(&users_topic(&input), options.partitions)?;
        load_users(kafka, &input, eddy::record::wall_clock_ms() - 60_000)?;
    }
    let mut child = command_for(options, kafka, case, &app, &input, &output)?.spawn()?;
    let result = (|| {
        let mut tail = kafka.tail(&output)?;
        if case.workload == "windowed" {
            // A window closes when a later click arrives.
            let now = eddy::record::wall_clock_ms();
            kafka.produce_at(
                &input,
                [
                    (
                        Some(user_of(0).into_bytes()),
                        b"warm up".to_vec(),
                        now - 2_000,
                    ),
                    (Some(user_of(0).into_bytes()), b"warm up".to_vec(), now),
                ],
            )?;
        } else {
            kafka.produce(
                &input,
                [(clicks.then(|| user_of(0).into_bytes()), b"warm up".to_vec())],
            )?;
        }
        tail.wait_for(1, Duration::from_secs(300))?;
        let per_line: fn(&str) -> usize = match case.workload {
            "wordcount" => |line| line.split_whitespace().count(),
            // Final windows come out as time passes; their number is not known up front.
            "windowed" => |_| 0,
            _ => |_| 1,
        };
        latency::measure(
            kafka,
            &input,
            &output,
            options.partitions,
            &latency::Feed {
                rate: options.rate,
                duration: options.latency_duration,
                outputs_per_line: per_line,
                key_of: clicks.then_some(user_of as fn(usize) -> String),
                since: if case.workload == "windowed" {
                    // From the end of the window: Eddy stamps a result with its window's last
                    // millisecond, Kafka Streams with its last record's time.
                    |ts| ts - ts.rem_euclid(1_000) + 1_000
                } else {
                    |ts| ts
                },
            },
        )
    })();
    let _ = child.kill();
    let _ = child.wait();
    remove_state(options, &app);
    result
}

/// Deletes the state directory of a finished run: a full benchmark would otherwise leave
/// gigabytes of RocksDB files behind.
pub(crate) fn remove_state(options: &Options, app: &str) {
    let _ = std::fs::remove_dir_all(state_dir(options, app));
}

/// Where application `app` of a benchmark run keeps its state.
pub(crate) fn state_dir(options: &Options, app: &str) -> PathBuf {
    options.out_dir.join("state").join(app)
}

/// The command that runs `case` as application `app` from `input` to `output`, logging to a
/// file in the output directory.
pub(crate) fn command_for(
    options: &Options,
    kafka: &eddy_testkit::Kafka,
    case: &Case<'_>,
    app: &str,
    input: &str,
    output: &str,
) -> anyhow::Result<Command> {
    let state = state_dir(options, app);
    std::fs::create_dir_all(&state)?;
    // Appended to, so that a restarted instance's log follows its predecessor's.
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(options.out_dir.join(format!("{app}.log")))?;
    let bootstrap = kafka.bootstrap_servers();
    let mut command = match case.system {
        "eddy" => {
            let binary = match case.workload {
                "wordcount" => "wordcount",
                "latest" => "bench-latest",
                "windowed" => "bench-windowed",
                "join" => "bench-join",
                _ => "bench-passthrough",
            };
            let mut c = Command::new(workspace_binary(binary)?);
            if case.workload == "latest" {
                // Restarted after kill -9 as the same static member (Kafka Streams too), and
                // logging its restore plans (at least: `EDDY_BENCH_LOG` may show more).
                c.env("EDDY__PROCESSING__STATIC_MEMBERSHIP", "true").env(
                    "RUST_LOG",
                    std::env::var("EDDY_BENCH_LOG").unwrap_or_else(|_| "info".to_owned()),
                );
            } else {
                // `EDDY_BENCH_LOG` (a `RUST_LOG` filter) shows more of what the apps do.
                c.env(
                    "RUST_LOG",
                    std::env::var("EDDY_BENCH_LOG").unwrap_or_else(|_| "warn".to_owned()),
                );
            }
            c.env("EDDY__APPLICATION__ID", app)
                .env("EDDY__KAFKA__BOOTSTRAP_SERVERS", bootstrap)
                .env("EDDY__APP__INPUT_TOPIC", input)
                .env("EDDY__APP__OUTPUT_TOPIC", output)
                .env("EDDY__STATE__DIR", &state)
                .env("EDDY__PROCESSING__GUARANTEE", case.guarantee)
                .env("EDDY__OPS__ADDRESS", "off");
            if let Ok(budget) = std::env::var("EDDY_BENCH_MEMORY_BUDGET_MB") {
                c.env("EDDY__MEMORY__BUDGET_MB", budget);
            }
            c
        }
        "kafka-streams" => {
            let classpath = format!(
                "{}:{}/*",
                options.kafka_streams.join("classes").display(),
                options.kafka_streams.join("dependency").display()
            );
            let mut c = Command::new("java");
            c.arg("-cp")
                .arg(classpath)
                .arg("dev.eddy.bench.StreamsBench")
                .args([case.workload, case.guarantee, bootstrap, app, input, output])
                .arg(&state);
            c
        }
        _ => {
            let mut c = Command::new(workspace_binary("bench-raw")?);
            c.args([case.guarantee, bootstrap, app, input, output]);
            c
        }
    };
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log));
    Ok(command)
}
