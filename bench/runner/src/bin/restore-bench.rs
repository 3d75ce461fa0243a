//! Measures state restore and savepoints for one large wordcount store against the local
//! broker: the changelog is filled directly with `records` entries (about 110 bytes each),
//! then the benchmark times
//! 1. a changelog-only restore into an empty state directory,
//! 2. a first and a second (incremental) savepoint of that store,
//! 3. a restore from the latest checkpoint plus the changelog tail.
//!
//! `cargo run -p eddy-bench --bin restore-bench -- [records] [--s3]` (default
//! 9,500,000 ≈ 1 GB; uses `EDDY_BOOTSTRAP_SERVERS`, or starts the local broker). The snapshot
//! store is a local directory, or with `--s3` a prefix on the local S3 server
//! (`EDDY_S3_ENDPOINT`, or `compose/local/s3.sh start`).

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use eddy_integration_tests::{
    borrowed, create_savepoint, AppProcess, SnapshotTarget, WordcountRun,
};
use rdkafka::producer::{BaseRecord, Producer};

const KEY_BYTES: usize = 100;

fn key(i: u64) -> Vec<u8> {
    let mut k = format!("{i:020}-").into_bytes();
    k.resize(KEY_BYTES, b'x');
    k
}

/// Waits until `app`'s log shows `needle` `times` times.
fn wait_log(
    app: &mut AppProcess,
    needle: &str,
    times: usize,
    deadline: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        if app.log_text().matches(needle).count() >= times {
            return Ok(start.elapsed());
        }
        if let Some(status) = app.exited()? {
            bail!(
                "the app exited ({status}) before `{needle}`:\n{}",
                app.log_tail(20)
            );
        }
        if start.elapsed() > deadline {
            bail!(
                "`{needle}` not logged within {deadline:?}:\n{}",
                app.log_tail(20)
            );
        }
        std::thread::park_timeout(Duration::from_millis(20)); // polling a log file
    }
}

fn fill(run: &WordcountRun, topic: &str, from: u64, count: u64) -> anyhow::Result<u64> {
    let producer: rdkafka::producer::BaseProducer = run
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
    producer.flush(Duration::from_secs(300))?;
    Ok(bytes)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let s3 = args.iter().any(|a| a == "--s3");
    let records: u64 = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(9_500_000);
    let run = WordcountRun::new("restore-bench", 1)?;
    let changelog = format!("{}-counts-changelog", run.application_id);
    // Compacted, as the app requires of its changelogs.
    run.kafka
        .create_topic_with(&changelog, 1, &[("cleanup.policy", "compact")])?;
    let started = Instant::now();
    let bytes = fill(&run, &changelog, 0, records)?;
    let mb = bytes as f64 / 1e6;
    println!(
        "changelog: {records} records, {mb:.0} MB written in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let target = if s3 {
        SnapshotTarget::s3(&run)?
    } else {
        SnapshotTarget::directory(&run)
    };
    println!("snapshot store: {}", target.location());
    let settings = target.settings(&[("EDDY__SNAPSHOT__CHECKPOINT_INTERVAL_MS", "1000")]);
    let env = borrowed(&settings);
    // Both tasks (0_0 stateless, 1_0 with the store) running = the store is restored.
    let restored = |app: &mut AppProcess, what: &str| -> anyhow::Result<()> {
        let secs = wait_log(app, "task running", 2, Duration::from_secs(3600))?.as_secs_f64();
        println!(
            "{what}: {secs:.1} s (process start to running) = {:.1} MB/s, {:.0} records/s of state",
            mb / secs,
            records as f64 / secs
        );
        Ok(())
    };
    let mut first = run.start("first", &env)?;
    restored(&mut first, "changelog-only restore")?;

    let t = Instant::now();
    let sp1 = create_savepoint(&run, &target).context("first savepoint")?;
    let secs = t.elapsed().as_secs_f64();
    // The RocksDB files the savepoint holds (compressed: fewer bytes than the changelog).
    let (_, manifest) = eddy::snapshot::read_manifest(&sp1, &target.s3_settings())?;
    let files_mb = manifest.size() as f64 / 1e6;
    println!(
        "first savepoint: {secs:.1} s for {files_mb:.0} MB of RocksDB files = {:.1} MB/s ({sp1})",
        files_mb / secs
    );
    let t = Instant::now();
    create_savepoint(&run, &target).context("second savepoint")?;
    println!(
        "second savepoint (incremental): {:.1} s",
        t.elapsed().as_secs_f64()
    );

    // A commit with state changes makes the instance checkpoint.
    run.produce_lines(&["checkpoint me".to_owned()])?;
    let store = target.open()?;
    let checkpoints = format!("{}/checkpoints/1_0", run.application_id);
    let deadline = Instant::now() + Duration::from_secs(600);
    while store.list(&checkpoints)?.is_empty() {
        if Instant::now() > deadline {
            bail!("no checkpoint of task 1_0 appeared in {checkpoints}");
        }
        std::thread::park_timeout(Duration::from_millis(100)); // polling the store
    }
    first.terminate(Duration::from_secs(120))?;
    let tail = records / 100;
    fill(&run, &changelog, records, tail)?;
    let t = Instant::now();
    let mut second = run.start("second", &env)?;
    restored(
        &mut second,
        &format!("checkpoint + tail restore ({tail} tail records)"),
    )?;
    println!(
        "  = {:.1} MB/s of RocksDB files (the checkpoint holds about the savepoint's {files_mb:.0} MB)",
        files_mb / t.elapsed().as_secs_f64()
    );
    second.terminate(Duration::from_secs(120))?;
    Ok(())
}
