//! Recovery after kill -9 of an instance holding large state: each system keeps the latest
//! value of every key (random, incompressible values) until its store holds the configured
//! size, then is killed with SIGKILL and restarted on the same state directory, as a
//! supervisor would, over and over. Recovery is the time from the kill to the moment every
//! partition processed a new record again, seen committed at the output.

use std::io::Write;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde::Serialize;

use super::recovery_phases::{log_end, Phases};
use super::{command_for, Case, Options};

/// Bytes of every key (`k` and 15 digits).
const KEY_BYTES: usize = 16;

/// One system's large-state instance: how it was built and what each recovery took.
#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    /// `eddy` or `kafka-streams`.
    pub system: String,
    /// Keys in the store.
    pub keys: u64,
    /// Bytes of keys and values in the store.
    pub state_bytes: u64,
    /// Size of the instance's state directory on disk after building.
    pub state_dir_bytes: u64,
    /// Seconds from start to the whole input processed.
    pub build_seconds: f64,
    /// Seconds from each kill -9 to every partition processing again.
    pub recovery_seconds: Vec<f64>,
    /// Where each Eddy recovery spent its time, from the restarted instance's log.
    pub phases: Vec<Phases>,
}

/// A running instance of one system.
struct Instance {
    case: Case<'static>,
    app: String,
    output: String,
    child: Child,
    tail: eddy_testkit::Tail,
    result: Recovery,
}

/// Builds the state in every system, then kills and restarts each `options.repeats` times,
/// alternating which system goes first.
///
/// # Errors
/// The broker or a process fails, or a system does not recover within 10 minutes.
pub fn run(
    options: &Options,
    kafka: &'static eddy_testkit::Kafka,
    out: &mut dyn Write,
) -> anyhow::Result<Vec<Recovery>> {
    let input = eddy_testkit::unique_name("bench-state");
    kafka.create_topic(&input, options.partitions)?;
    let producer: BaseProducer = kafka
        .config()
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "262144")
        .create()?;
    let per_record = (KEY_BYTES + options.value_bytes) as u64;
    let keys = (options.state_bytes / per_record).max(1);
    let loading = Instant::now();
    let mut random = 0x2545_f491_4f6c_dd1d_u64;
    for i in 0..keys {
        let key = format!("k{i:015}");
        let value = random_bytes(&mut random, options.value_bytes);
        send(&producer, &input, None, &key, &value)?;
    }
    acknowledged(&producer, Duration::from_secs(600))?;
    let _ = writeln!(
        out,
        "recovery: {keys} keys × {} bytes ({} MB of state) in `{input}`, loaded in {:.1} s",
        per_record,
        keys * per_record / 1_000_000,
        loading.elapsed().as_secs_f64()
    );
    let mut instances = Vec::new();
    for system in ["eddy", "kafka-streams"]
        .into_iter()
        .filter(|s| options.systems.iter().any(|o| o == s))
    {
        let instance = build(options, kafka, system, &input, keys, per_record)?;
        let _ = writeln!(
            out,
            "recovery: {system} built {} MB of state ({} MB on disk) in {:.1} s",
            instance.result.state_bytes / 1_000_000,
            instance.result.state_dir_bytes / 1_000_000,
            instance.result.build_seconds
        );
        instances.push(instance);
    }
    let mut stopped = Vec::new();
    // Every live instance processes every probe, so each instance's output grows by the
    // probes of every cycle: its own and the other system's.
    let mut expected_outputs = keys;
    let outcome = (|| -> anyhow::Result<()> {
        for cycle in 0..options.repeats {
            let order: Vec<usize> = if cycle % 2 == 0 {
                (0..instances.len()).collect()
            } else {
                (0..instances.len()).rev().collect()
            };
            for i in order {
                let instance = &mut instances[i];
                expected_outputs += u64::try_from(options.partitions)?;
                let (seconds, phases) = kill_and_recover(
                    options,
                    kafka,
                    &producer,
                    &input,
                    instance,
                    cycle * 2 + i,
                    expected_outputs,
                )?;
                let _ = writeln!(
                    out,
                    "recovery {}: {:<13} processing again {seconds:.2} s after kill -9{}",
                    cycle + 1,
                    instance.case.system,
                    phases.map_or_else(String::new, |p| format!(" ({})", describe(&p)))
                );
                instance.result.recovery_seconds.push(seconds);
                instance.result.phases.extend(phases);
            }
        }
        Ok(())
    })();
    for mut instance in instances {
        let _ = instance.child.kill();
        let _ = instance.child.wait();
        super::remove_state(options, &instance.app);
        stopped.push(instance.result);
    }
    outcome.map(|()| stopped)
}

/// Starts `system` on `input` and waits until it processed all `keys` records.
fn build(
    options: &Options,
    kafka: &'static eddy_testkit::Kafka,
    system: &'static str,
    input: &str,
    keys: u64,
    per_record: u64,
) -> anyhow::Result<Instance> {
    let case = Case {
        system,
        workload: "latest",
        guarantee: "exactly_once",
    };
    let app = eddy_testkit::unique_name(&format!("bench-recovery-{system}"));
    let output = format!("{app}-out");
    kafka.create_topic(&output, options.partitions)?;
    let mut tail = kafka.tail(&output)?;
    let started = Instant::now();
    let mut child = command_for(options, kafka, &case, &app, input, &output)?
        .spawn()
        .with_context(|| format!("starting {system}"))?;
    if let Err(e) = tail.wait_for(keys, Duration::from_secs(3_600)) {
        let _ = child.kill();
        let _ = child.wait();
        super::remove_state(options, &app);
        return Err(anyhow::anyhow!(
            "{system} did not process the state input: {e} (log in {})",
            options.out_dir.display()
        ));
    }
    let build_seconds = started.elapsed().as_secs_f64();
    let state_dir_bytes = directory_bytes(&super::state_dir(options, &app));
    Ok(Instance {
        case,
        app,
        output,
        child,
        tail,
        result: Recovery {
            system: system.to_owned(),
            keys,
            state_bytes: keys * per_record,
            state_dir_bytes,
            build_seconds,
            recovery_seconds: Vec::new(),
            phases: Vec::new(),
        },
    })
}

/// Kills `instance` with SIGKILL, starts it again on the same state and returns the seconds
/// until one new record on every partition (probe batch `probe`) was processed and committed,
/// which makes `expected_outputs` in all, with Eddy's phases on the way.
fn kill_and_recover(
    options: &Options,
    kafka: &'static eddy_testkit::Kafka,
    producer: &BaseProducer,
    input: &str,
    instance: &mut Instance,
    probe: usize,
    expected_outputs: u64,
) -> anyhow::Result<(f64, Option<Phases>)> {
    let log = options.out_dir.join(format!("{}.log", instance.app));
    let log_from = log_end(&log);
    instance.child.kill().context("kill -9")?;
    instance.child.wait().context("reaping")?;
    let killed = Instant::now();
    let killed_at = std::time::SystemTime::now();
    instance.child = command_for(
        options,
        kafka,
        &instance.case,
        &instance.app,
        input,
        &instance.output,
    )?
    .spawn()
    .with_context(|| format!("restarting {}", instance.case.system))?;
    let mut random = u64::try_from(probe)? + 1;
    for partition in 0..options.partitions {
        let key = format!("probe-{probe}-{partition}");
        let value = random_bytes(&mut random, options.value_bytes);
        send(producer, input, Some(partition), &key, &value)?;
    }
    acknowledged(producer, Duration::from_secs(60))?;
    let deadline = Duration::from_secs(600);
    while instance.tail.count(Duration::from_millis(10))? < expected_outputs {
        if killed.elapsed() > deadline {
            anyhow::bail!(
                "{} not processing {deadline:?} after kill -9 (log in {})",
                instance.case.system,
                options.out_dir.display()
            );
        }
    }
    let seconds = killed.elapsed().as_secs_f64();
    let phases = if instance.case.system == "eddy" {
        Some(Phases::read(&log, log_from, killed_at).context("reading the phases")?)
    } else {
        None
    };
    Ok((seconds, phases))
}

/// `phases` as one line: each phase's end in seconds after the kill.
pub fn describe(phases: &Phases) -> String {
    let ends: Vec<String> = Phases::NAMES
        .iter()
        .zip(phases.ends())
        .map(|(name, end)| {
            let short = name.split([',', ' ']).next().unwrap_or(name);
            end.map_or_else(|| format!("{short} ?"), |s| format!("{short} {s:.2}"))
        })
        .collect();
    ends.join(", ")
}

fn send(
    producer: &BaseProducer,
    topic: &str,
    partition: Option<i32>,
    key: &str,
    value: &[u8],
) -> anyhow::Result<()> {
    let mut record = BaseRecord::to(topic).key(key).payload(value);
    if let Some(p) = partition {
        record = record.partition(p);
    }
    eddy_testkit::send_waiting(producer, record).with_context(|| format!("producing to {topic}"))
}

/// Waits until every record `producer` sent is acknowledged, serving its delivery reports in
/// 1 ms polls so that the wait ends when the last acknowledgement arrives.
fn acknowledged(producer: &BaseProducer, timeout: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while producer.in_flight_count() > 0 {
        if start.elapsed() > timeout {
            anyhow::bail!(
                "{} records unacknowledged after {timeout:?}",
                producer.in_flight_count()
            );
        }
        producer.poll(Duration::from_millis(1));
    }
    Ok(())
}

/// `len` pseudo-random bytes (xorshift64), so that no store compresses them away.
fn random_bytes(state: &mut u64, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        bytes.extend_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Total size of the files under `dir`.
fn directory_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => directory_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
