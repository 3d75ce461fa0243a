//! The restore of one large store (`--restore-mb`): a wordcount changelog is written directly
//! with the configured bytes of state, then one instance restores it from the changelog alone
//! into an empty state directory, takes a first and a second (incremental) savepoint, and a
//! second instance restores from the latest checkpoint plus a changelog tail. Each restore is
//! timed from process start to ready (both tasks running) with the process's peak resident
//! memory, which must stay bounded however large the state.

use std::fmt::Write as _;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use eddy_integration_tests::{
    borrowed, create_savepoint, AppProcess, SnapshotTarget, WordcountRun,
};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use serde::Serialize;

/// Bytes of every changelog key (a number padded to a long word).
const KEY_BYTES: usize = 100;
/// Bytes of every changelog value (a count, 8 bytes big-endian).
const VALUE_BYTES: usize = 8;
/// Bytes of state per changelog record.
pub const RECORD_BYTES: u64 = (KEY_BYTES + VALUE_BYTES) as u64;

/// One timed step of the restore measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What was timed.
    pub what: String,
    /// Seconds the step took.
    pub seconds: f64,
    /// Megabytes the step moved (changelog bytes for a restore, RocksDB files for a snapshot).
    pub megabytes: f64,
    /// Peak resident memory of the restoring process, for restores.
    pub peak_rss_bytes: Option<u64>,
}

/// The whole measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Restore {
    /// Records in the changelog before the first restore.
    pub records: u64,
    /// Bytes of keys and values in the changelog.
    pub changelog_bytes: u64,
    /// Where the snapshots went (a directory or an S3 location).
    pub snapshot_store: String,
    /// The timed steps, in order.
    pub steps: Vec<Step>,
}

/// Key `i`: its number, then hex digits drawn from it (so RocksDB compresses the store about
/// as much as real keys, not to a tenth as a constant padding would).
fn key(i: u64) -> Vec<u8> {
    let mut k = format!("{i:020}-").into_bytes();
    let mut state = i;
    while k.len() < KEY_BYTES {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        k.extend_from_slice(format!("{z:016x}").as_bytes());
    }
    k.truncate(KEY_BYTES);
    k
}

/// Writes `count` records from number `from` on to partition 0 of `topic`; returns their bytes.
fn fill(run: &WordcountRun, topic: &str, from: u64, count: u64) -> anyhow::Result<u64> {
    let producer: BaseProducer = run
        .kafka
        .config()
        .set("linger.ms", "50")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let mut bytes = 0;
    for i in from..from + count {
        let k = key(i);
        let v = (i64::try_from(i % 1000)? + 1).to_be_bytes();
        bytes += (k.len() + v.len()) as u64;
        eddy_testkit::send_waiting(
            &producer,
            BaseRecord::to(topic).partition(0).key(&k).payload(&v[..]),
        )?;
    }
    producer.flush(Duration::from_secs(600))?;
    Ok(bytes)
}

/// Waits until `app`'s log shows `needle` `times` times; returns the time waited.
fn wait_log(
    app: &mut AppProcess,
    needle: &str,
    times: usize,
    deadline: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    eddy_integration_tests::eventually(needle, deadline, || {
        if let Some(status) = app.exited()? {
            bail!(
                "the app exited ({status}) before `{needle}`:\n{}",
                app.log_tail(20)
            );
        }
        Ok(app.log_text().matches(needle).count() >= times)
    })?;
    Ok(start.elapsed())
}

/// Times `app` from its start to both tasks running (0_0 stateless, 1_0 with the store), and
/// reads its peak resident memory then.
fn restored(app: &mut AppProcess, started: Instant, what: &str, mb: f64) -> anyhow::Result<Step> {
    wait_log(app, "task running", 2, Duration::from_secs(7200))?;
    let seconds = started.elapsed().as_secs_f64();
    let peak = crate::process::cost(app.pid())?.peak_rss_bytes;
    Ok(Step {
        what: what.to_owned(),
        seconds,
        megabytes: mb,
        peak_rss_bytes: Some(peak),
    })
}

/// Runs the measurement for `state_bytes` of state, the snapshots in a directory or (with
/// `s3`) on the local S3 server, printing each step to `out` as it ends.
///
/// # Errors
/// The broker, the snapshot store or an instance fails, or a restore takes over two hours.
pub fn run(state_bytes: u64, s3: bool, out: &mut dyn Write) -> anyhow::Result<Restore> {
    let records = (state_bytes / RECORD_BYTES).max(1);
    let run = WordcountRun::new("restore-bench", 1)?;
    let changelog = format!("{}-counts-changelog", run.application_id);
    // Compacted, as the app requires of its changelogs.
    run.kafka
        .create_topic_with(&changelog, 1, &[("cleanup.policy", "compact")])?;
    let started = Instant::now();
    let bytes = fill(&run, &changelog, 0, records)?;
    let mb = bytes as f64 / 1e6;
    let _ = writeln!(
        out,
        "restore: {records} records, {mb:.0} MB of changelog written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let target = if s3 {
        SnapshotTarget::s3(&run)?
    } else {
        SnapshotTarget::directory(&run)
    };
    let mut steps = Vec::new();
    let mut report = |step: Step, out: &mut dyn Write| {
        let _ = writeln!(out, "restore: {}", step_line(&step));
        steps.push(step);
    };
    let settings = target.settings(&[("EDDY__SNAPSHOT__CHECKPOINT_INTERVAL_MS", "1000")]);
    let env = borrowed(&settings);
    let t = Instant::now();
    let mut first = run.start("first", &env)?;
    report(restored(&mut first, t, "changelog-only restore", mb)?, out);

    let t = Instant::now();
    let savepoint = create_savepoint(&run, &target).context("first savepoint")?;
    // The RocksDB files the savepoint holds (compressed: fewer bytes than the changelog).
    let (_, manifest) = eddy::snapshot::read_manifest(&savepoint, &target.s3_settings())?;
    let files_mb = manifest.size() as f64 / 1e6;
    report(
        Step {
            what: "first savepoint".to_owned(),
            seconds: t.elapsed().as_secs_f64(),
            megabytes: files_mb,
            peak_rss_bytes: None,
        },
        out,
    );
    let t = Instant::now();
    create_savepoint(&run, &target).context("second savepoint")?;
    report(
        Step {
            what: "second savepoint (incremental)".to_owned(),
            seconds: t.elapsed().as_secs_f64(),
            megabytes: 0.0,
            peak_rss_bytes: None,
        },
        out,
    );

    // A commit with state changes makes the instance checkpoint.
    run.produce_lines(&["checkpoint me".to_owned()])?;
    let store = target.open()?;
    let checkpoints = format!("{}/checkpoints/1_0", run.application_id);
    eddy_integration_tests::eventually(
        "a checkpoint of task 1_0",
        Duration::from_secs(600),
        || Ok(!store.list(&checkpoints)?.is_empty()),
    )?;
    first.terminate(Duration::from_secs(300))?;
    let tail = records / 100;
    let tail_mb = fill(&run, &changelog, records, tail)? as f64 / 1e6;
    let t = Instant::now();
    let mut second = run.start("second", &env)?;
    report(
        restored(
            &mut second,
            t,
            &format!("checkpoint ({files_mb:.0} MB of files) + tail ({tail} records) restore"),
            mb + tail_mb,
        )?,
        out,
    );
    second.terminate(Duration::from_secs(300))?;
    Ok(Restore {
        records,
        changelog_bytes: bytes,
        snapshot_store: target.location(),
        steps,
    })
}

/// One step as a line of text.
fn step_line(step: &Step) -> String {
    let mut line = format!("{}: {:.1} s", step.what, step.seconds);
    if step.megabytes > 0.0 && step.seconds > 0.0 {
        let _ = write!(
            line,
            ", {:.0} MB = {:.1} MB/s",
            step.megabytes,
            step.megabytes / step.seconds
        );
    }
    if let Some(peak) = step.peak_rss_bytes {
        let _ = write!(line, ", peak RSS {} MiB", peak >> 20);
    }
    line
}

/// The measurement as a markdown section (empty without one).
pub fn markdown(restore: Option<&Restore>) -> String {
    let Some(r) = restore else {
        return String::new();
    };
    let mut out = format!(
        "\n## Restore of one large store\n\n{} changelog records, {} MB of state in one wordcount store, snapshots in {}. A restore is timed from process start to ready (both tasks running); MB/s counts state bytes for a restore (the checkpoint's state is counted whole) and RocksDB file bytes for a savepoint.\n\n| step | seconds | MB | MB/s | peak RSS MiB |\n|---|---|---|---|---|\n",
        r.records,
        r.changelog_bytes / 1_000_000,
        r.snapshot_store
    );
    for s in &r.steps {
        let rate = if s.megabytes > 0.0 && s.seconds > 0.0 {
            format!("{:.1}", s.megabytes / s.seconds)
        } else {
            "-".to_owned()
        };
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.0} | {rate} | {} |",
            s.what,
            s.seconds,
            s.megabytes,
            s.peak_rss_bytes
                .map_or_else(|| "-".to_owned(), |p| (p >> 20).to_string())
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_of_one_length() {
        assert_eq!(key(7).len(), KEY_BYTES);
        assert_ne!(key(7), key(70));
        assert!(key(7).starts_with(b"00000000000000000007-"));
        assert!(key(7).is_ascii());
        assert_ne!(key(7)[21..], key(8)[21..]);
    }

    #[test]
    fn the_report_shows_rates_and_memory_only_where_measured() {
        let restore = Restore {
            records: 10,
            changelog_bytes: 2_000_000,
            snapshot_store: "/tmp/s".to_owned(),
            steps: vec![
                Step {
                    what: "changelog-only restore".to_owned(),
                    seconds: 4.0,
                    megabytes: 2.0,
                    peak_rss_bytes: Some(64 << 20),
                },
                Step {
                    what: "second savepoint (incremental)".to_owned(),
                    seconds: 0.5,
                    megabytes: 0.0,
                    peak_rss_bytes: None,
                },
            ],
        };
        let text = markdown(Some(&restore));
        assert!(
            text.contains("| changelog-only restore | 4.0 | 2 | 0.5 | 64 |"),
            "{text}"
        );
        assert!(
            text.contains("| second savepoint (incremental) | 0.5 | 0 | - | - |"),
            "{text}"
        );
        assert_eq!(markdown(None), "");
        assert_eq!(
            step_line(&restore.steps[0]),
            "changelog-only restore: 4.0 s, 2 MB = 0.5 MB/s, peak RSS 64 MiB"
        );
    }
}
