//! Bounded runs (`processing.mode = bounded`) against the real broker: instances read the
//! input up to the ends fixed when the run started, close every window, commit and exit 0 by
//! themselves, under kill -9 of an instance; records written after the run started are left
//! for the next run; and the results equal those of a streaming run over the same input.
//! A run bounded by a time (`processing.bounded_until_ms`) reads each partition up to its
//! first record at or after that time.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use eddy_integration_tests::{
    check_windows, expected_counts, generate_lines, windowed_counts, with_log_tails, AppProcess,
    WordcountRun, WordcountSpec,
};
use eddy_testkit::Isolation;

const SIZE: i64 = 1_000;
const GRACE: i64 = 500;
const USERS: usize = 32;

/// A user and a time: a window `(user, start)` or a record `(user, event time)`.
type At = (String, i64);

/// `n` clicks of random users (from `seed`) 5 ms apart from `base`; 4 % of them 0.6–2 s
/// behind (mostly late).
fn clicks(seed: u64, n: i64, base: i64) -> Vec<At> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let user = format!("user-{}", rng.random_range(0..USERS));
            let mut at = base + i * 5;
            if rng.random_range(0..100) < 4 {
                at -= rng.random_range(600..2_000);
            }
            (user, at)
        })
        .collect()
}

fn bounded(mut spec: WordcountSpec) -> WordcountSpec {
    spec.env
        .push(("EDDY__PROCESSING__MODE".to_owned(), "bounded".to_owned()));
    spec
}

fn windowed_spec(run: &WordcountRun, name: &str) -> WordcountSpec {
    let mut spec = run.spec(name, &[("EDDY__PROCESSING__COMMIT_INTERVAL_MS", "50")]);
    spec.binary = "windowed-clicks".to_owned();
    spec
}

/// Final counts per (user, window start) of every window (the end of input closes them
/// all), and the late records, from one partition's input in offset order.
fn recompute(records: &[At]) -> (BTreeMap<At, u64>, Vec<At>) {
    let mut counts: BTreeMap<At, u64> = BTreeMap::new();
    let mut late = Vec::new();
    let mut time = i64::MIN;
    for (user, at) in records {
        time = time.max(*at);
        let start = at - at.rem_euclid(SIZE);
        if start + SIZE > time - GRACE {
            *counts.entry((user.clone(), start)).or_default() += 1;
        } else {
            late.push((user.clone(), *at));
        }
    }
    (counts, late)
}

/// The committed windows of `topic`: `(user, start) → count`, failing on a window written
/// twice.
fn windows(run: &WordcountRun, topic: &str) -> anyhow::Result<BTreeMap<At, u64>> {
    let (counts, twice) = windowed_counts(run.kafka, topic, SIZE)?;
    anyhow::ensure!(
        twice.is_empty(),
        "windows written twice to {topic}: {twice:?}"
    );
    Ok(counts)
}

/// The committed records of a late topic, sorted.
fn late_records(run: &WordcountRun, topic: &str) -> anyhow::Result<Vec<At>> {
    let mut late: Vec<At> = run
        .kafka
        .read_all(topic, Isolation::ReadCommitted)?
        .iter()
        .map(|r| Ok((r.key_str(), r.value_str().parse()?)))
        .collect::<anyhow::Result<_>>()?;
    late.sort();
    Ok(late)
}

/// Waits for every app to exit by itself, successfully.
fn wait_all_exit(apps: &mut [AppProcess], deadline: Duration) -> anyhow::Result<()> {
    for i in 0..apps.len() {
        let status = match apps[i].wait_exit(deadline) {
            Ok(status) => status,
            Err(e) => return Err(with_log_tails(apps, e)),
        };
        anyhow::ensure!(
            status.success(),
            "{} exited with {status}; log:\n{}",
            apps[i].name(),
            apps[i].log_tail(40)
        );
    }
    Ok(())
}

#[test]
fn a_bounded_windowed_count_closes_every_window_exits_and_equals_the_streaming_run(
) -> anyhow::Result<()> {
    let started = Instant::now();
    let partitions = 4;
    let run = WordcountRun::new("bounded-windows", partitions)?;
    let late_topic = format!("{}-late", run.output);
    run.kafka.create_topic(&late_topic, partitions)?;

    // Event times an hour ago, 5 ms apart; 4 % of records 0.6–2 s behind (mostly late).
    let base = eddy::record::wall_clock_ms() - 3_600_000;
    let input = clicks(7, 8_000, base);
    run.kafka.produce(
        &run.input,
        input
            .iter()
            .map(|(user, at)| (Some(user.as_bytes().to_vec()), at.to_string().into_bytes())),
    )?;
    let stored = run.kafka.read_all(&run.input, Isolation::ReadUncommitted)?;
    let mut by_partition: BTreeMap<i32, Vec<At>> = BTreeMap::new();
    for r in &stored {
        by_partition
            .entry(r.partition)
            .or_default()
            .push((r.key_str(), r.value_str().parse()?));
    }
    let mut expected = BTreeMap::new();
    let mut expected_late = Vec::new();
    for records in by_partition.values() {
        let (counts, late) = recompute(records);
        expected.extend(counts);
        expected_late.extend(late);
    }
    expected_late.sort();
    assert!(expected_late.len() > 50, "the input has late records");

    let mut apps = vec![
        AppProcess::start("a", bounded(windowed_spec(&run, "a")))?,
        AppProcess::start("b", bounded(windowed_spec(&run, "b")))?,
    ];
    // Late records are written as the run goes: once some are, the run is under way.
    run.kafka
        .tail(&late_topic)?
        .wait_for(1, Duration::from_secs(120))
        .map_err(|e| with_log_tails(&apps, e))?;
    // Records written after the run started lie past its ends: an hour later than the
    // rest, they would close every window and make nothing late if they were read.
    let after: Vec<At> = (0..USERS)
        .map(|u| (format!("user-{u}"), base + 7_200_000))
        .collect();
    run.kafka.produce(
        &run.input,
        after
            .iter()
            .map(|(user, at)| (Some(user.as_bytes().to_vec()), at.to_string().into_bytes())),
    )?;
    let victim = rand::rngs::StdRng::seed_from_u64(8).random_range(0..apps.len());
    apps[victim].kill9()?;
    apps[victim].restart()?;
    wait_all_exit(&mut apps, Duration::from_secs(180))?;
    // Restarted after its run finished, an instance has nothing to do: it starts no new run
    // (which would read the records written since).
    apps[victim].restart()?;
    wait_all_exit(&mut apps[victim..=victim], Duration::from_secs(60))?;

    let got = windows(&run, &run.output)?;
    check_windows(&expected, &got)?;
    assert_eq!(late_records(&run, &late_topic)?, expected_late);
    run.assert_no_open_transaction(&[run.output.clone(), late_topic.clone()])?;
    let bounded_took = started.elapsed();

    // The streaming run over the same input: the records written after the bounded run
    // started close every earlier window (their own stay open), so it ends with the same
    // windows and late records.
    let mut streaming = windowed_spec(&run, "streaming");
    streaming.application_id = eddy_testkit::unique_name("streaming-windows");
    streaming.output_topic = eddy_testkit::unique_name("streaming-windows-counts");
    let streaming_late = format!("{}-late", streaming.output_topic);
    run.kafka
        .create_topic(&streaming.output_topic, partitions)?;
    run.kafka.create_topic(&streaming_late, partitions)?;
    let mut app = AppProcess::start("streaming", streaming.clone())?;
    let waited = run
        .kafka
        .tail(&streaming.output_topic)?
        .wait_for(u64::try_from(got.len())?, Duration::from_secs(120))
        .map_err(|e| with_log_tails(std::slice::from_ref(&app), e));
    app.terminate(Duration::from_secs(60))?;
    waited?;
    assert_eq!(
        windows(&run, &streaming.output_topic)?,
        got,
        "the streaming run's windows"
    );
    assert_eq!(late_records(&run, &streaming_late)?, expected_late);
    println!(
        "bounded windows: {} records, {} windows, {} late, 2 instances, 1 kill -9, bounded run {:.1} s",
        input.len(),
        got.len(),
        expected_late.len(),
        bounded_took.as_secs_f64()
    );
    Ok(())
}

#[test]
fn a_bounded_run_until_a_time_reads_each_partition_up_to_its_first_record_at_that_time(
) -> anyhow::Result<()> {
    let partitions = 3;
    let run = WordcountRun::new("bounded-until", partitions)?;
    let late_topic = format!("{}-late", run.output);
    run.kafka.create_topic(&late_topic, partitions)?;

    // 4 000 clicks 5 ms apart over 20 s, an hour ago, event time (the value) and record
    // timestamp alike; 4 % of them 0.6–2 s behind, so around the bound some older records
    // follow the first one at or after it. The bound is inside a window.
    let base = eddy::record::wall_clock_ms() - 3_600_000;
    let base = base - base.rem_euclid(SIZE);
    let until = base + 10_250;
    let input = clicks(11, 4_000, base);
    // Every record is there before the run starts: only the bound holds the later ones back.
    run.kafka.produce_at(
        &run.input,
        input.iter().map(|(user, at)| {
            (
                Some(user.as_bytes().to_vec()),
                at.to_string().into_bytes(),
                *at,
            )
        }),
    )?;
    let mut by_partition: BTreeMap<i32, Vec<At>> = BTreeMap::new();
    for r in &run.kafka.read_all(&run.input, Isolation::ReadUncommitted)? {
        by_partition
            .entry(r.partition)
            .or_default()
            .push((r.key_str(), r.value_str().parse()?));
    }
    let mut expected = BTreeMap::new();
    let mut expected_late = Vec::new();
    let mut ends = vec![0_i64; usize::try_from(partitions)?];
    let mut older_after_the_end = 0;
    for (&partition, records) in &by_partition {
        let end = records
            .iter()
            .position(|(_, at)| *at >= until)
            .unwrap_or(records.len());
        ends[usize::try_from(partition)?] = i64::try_from(end)?;
        older_after_the_end += records[end..].iter().filter(|(_, at)| *at < until).count();
        let (counts, late) = recompute(&records[..end]);
        expected.extend(counts);
        expected_late.extend(late);
    }
    expected_late.sort();
    assert!(
        older_after_the_end > 0 && !expected_late.is_empty(),
        "the input has records before the bound that follow its first record at it, and late records"
    );

    let mut spec = bounded(windowed_spec(&run, "a"));
    spec.env.push((
        "EDDY__PROCESSING__BOUNDED_UNTIL_MS".to_owned(),
        until.to_string(),
    ));
    let mut app = AppProcess::start("a", spec)?;
    wait_all_exit(std::slice::from_mut(&mut app), Duration::from_secs(180))?;

    check_windows(&expected, &windows(&run, &run.output)?)?;
    assert_eq!(late_records(&run, &late_topic)?, expected_late);
    let committed: Vec<i64> = run
        .kafka
        .committed_offsets(&run.application_id, &run.input)?
        .into_iter()
        .map(|offset| offset.unwrap_or(-1))
        .collect();
    assert_eq!(
        committed, ends,
        "each partition is read up to its first record at the bound"
    );
    run.assert_no_open_transaction(&[run.output.clone(), late_topic])?;
    Ok(())
}

#[test]
fn bounded_runs_through_a_repartition_count_each_record_once_run_after_run() -> anyhow::Result<()> {
    let started = Instant::now();
    let run = WordcountRun::new("bounded-wordcount", 4)?;
    let first = generate_lines(21, 3_000, 200);
    run.produce_lines(&first)?;
    let spec =
        |name: &str| bounded(run.spec(name, &[("EDDY__PROCESSING__COMMIT_INTERVAL_MS", "50")]));
    let mut apps = vec![
        AppProcess::start("a", spec("a"))?,
        AppProcess::start("b", spec("b"))?,
    ];
    run.kafka
        .tail(&run.output)?
        .wait_for(1, Duration::from_secs(120))
        .map_err(|e| with_log_tails(&apps, e))?;
    // Past the run's ends: left for the next run.
    let second = generate_lines(22, 1_000, 200);
    run.produce_lines(&second)?;
    apps[0].kill9()?;
    apps[0].restart()?;
    wait_all_exit(&mut apps, Duration::from_secs(180))?;
    let expected: HashMap<String, u64> = expected_counts(first.iter().map(String::as_str));
    let violations = run.violations(&expected)?;
    assert!(
        violations.is_empty(),
        "first run:\n{}",
        violations.join("\n")
    );
    let first_took = started.elapsed();

    // The next bounded run reads what came after the first one's ends, on one instance.
    let mut next = AppProcess::start("c", spec("c"))?;
    wait_all_exit(std::slice::from_mut(&mut next), Duration::from_secs(180))?;
    let expected = expected_counts(first.iter().chain(&second).map(String::as_str));
    let violations = run.violations(&expected)?;
    assert!(
        violations.is_empty(),
        "second run:\n{}",
        violations.join("\n")
    );
    run.assert_settled()?;
    println!(
        "bounded wordcount: {} + {} lines, 2 runs, 1 kill -9, first run {:.1} s, both {:.1} s",
        first.len(),
        second.len(),
        first_took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
