//! A windowed count with final-only emission under kill -9 chaos and rescaling, against the
//! real broker: the committed output holds each closed window exactly once with exactly the
//! count a recomputation from the input gives, and the late topic exactly the records the
//! recomputation finds late. Late/on-time decisions depend on each task's operator time, so
//! equality also shows that time survives every crash and move.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use eddy_integration_tests::{
    check_windows, eventually, windowed_counts, with_log_tails, AppProcess, WordcountRun,
};
use eddy_testkit::Isolation;

const PARTITIONS: i32 = 6;
const RECORDS: usize = 24_000;
const CHUNKS: usize = 8;
const USERS: usize = 48;
const SIZE: i64 = 1_000;
const GRACE: i64 = 500;

/// A user and a time: a window `(user, start)` or a record `(user, event time)`.
type At = (String, i64);

/// What the app must produce from one partition's input in offset order: final counts per
/// (user, window start) of every closed window, and the late records `(user, time)`.
fn recompute(records: &[At]) -> (BTreeMap<At, u64>, Vec<At>) {
    let mut counts: BTreeMap<(String, i64), u64> = BTreeMap::new();
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
    counts.retain(|(_, start), _| start + SIZE <= time - GRACE);
    (counts, late)
}

fn spec_for(run: &WordcountRun, name: &str) -> eddy_integration_tests::WordcountSpec {
    let mut spec = run.spec(name, &[("EDDY__PROCESSING__COMMIT_INTERVAL_MS", "50")]);
    spec.binary = "windowed-clicks".to_owned();
    spec
}

#[test]
fn final_window_counts_are_exact_under_kill_9_and_rescaling() -> anyhow::Result<()> {
    let started = Instant::now();
    let run = WordcountRun::new("windows", PARTITIONS)?;
    let late_topic = format!("{}-late", run.output);
    run.kafka.create_topic(&late_topic, PARTITIONS)?;

    // Event times an hour ago (recent enough for the output's retention), 5 ms apart on
    // average per record; 4 % of records lag 0.6–2 s behind (mostly late), 10 % up to 0.4 s
    // (within grace). The last record of each user is an hour later and closes every window.
    let base = eddy::record::wall_clock_ms() - 3_600_000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut input: Vec<(String, i64)> = (0..RECORDS)
        .map(|i| {
            let user = format!("user-{}", rng.random_range(0..USERS));
            let mut at = base + i as i64 * 5;
            match rng.random_range(0..100) {
                0..4 => at -= rng.random_range(600..2_000),
                4..14 => at -= rng.random_range(0..400),
                _ => {}
            }
            (user, at)
        })
        .collect();
    let flush = base + RECORDS as i64 * 5 + 60_000;
    input.extend((0..USERS).map(|u| (format!("user-{u}"), flush)));

    let mut apps = vec![
        AppProcess::start("a", spec_for(&run, "a"))?,
        AppProcess::start("b", spec_for(&run, "b"))?,
    ];
    let mut tail = run.kafka.tail(&run.output)?;
    let mut kills = 0;
    for (i, chunk) in input.chunks(input.len().div_ceil(CHUNKS)).enumerate() {
        run.kafka.produce(
            &run.input,
            chunk
                .iter()
                .map(|(user, at)| (Some(user.as_bytes().to_vec()), at.to_string().into_bytes())),
        )?;
        tail.count(Duration::from_millis(rng.random_range(800..2_000)))?;
        if i == 2 {
            apps.push(AppProcess::start("c", spec_for(&run, "c"))?);
        }
        let victim = rng.random_range(0..apps.len());
        apps[victim].kill9()?;
        kills += 1;
        apps[victim].restart()?;
    }

    // The expected output, from the input as the broker stored it (per partition, in order).
    let stored = run.kafka.read_all(&run.input, Isolation::ReadUncommitted)?;
    let mut by_partition: BTreeMap<i32, Vec<(String, i64)>> = BTreeMap::new();
    for r in &stored {
        by_partition
            .entry(r.partition)
            .or_default()
            .push((r.key_str(), r.value_str().parse()?));
    }
    let mut expected: BTreeMap<(String, i64), u64> = BTreeMap::new();
    let mut expected_late: Vec<(String, i64)> = Vec::new();
    for records in by_partition.values() {
        let (counts, late) = recompute(records);
        expected.extend(counts);
        expected_late.extend(late);
    }
    expected_late.sort();
    assert!(
        expected_late.len() > 100,
        "the input has late records to route"
    );

    // A wait that times out is reported after the comparisons below, which say what is
    // missing or wrong more precisely than a count.
    let windows = u64::try_from(expected.len())?;
    let waited = tail
        .wait_for(windows, Duration::from_secs(300))
        .and_then(|_| {
            run.kafka.tail(&late_topic)?.wait_for(
                u64::try_from(expected_late.len()).unwrap_or(u64::MAX),
                Duration::from_secs(60),
            )
        })
        .map_err(|e| with_log_tails(&apps, e));
    for app in &mut apps {
        app.terminate(Duration::from_secs(60))?;
    }

    let (seen, duplicates) = windowed_counts(run.kafka, &run.output, SIZE)?;
    assert!(
        duplicates.is_empty(),
        "windows emitted twice: {duplicates:?}"
    );
    check_windows(&expected, &seen)?;

    let mut late: Vec<(String, i64)> = run
        .kafka
        .read_all(&late_topic, Isolation::ReadCommitted)?
        .iter()
        .map(|r| Ok((r.key_str(), r.value_str().parse()?)))
        .collect::<anyhow::Result<_>>()?;
    late.sort();
    assert_eq!(
        late, expected_late,
        "the late topic holds exactly the late records"
    );
    waited?;
    run.assert_no_open_transaction(&[
        run.output.clone(),
        late_topic.clone(),
        format!("{}-clicks-changelog", run.application_id),
    ])?;
    println!(
        "windows: {} records, {windows} final windows, {} late, {} instances, {kills} kill -9s, {:.1} s",
        input.len(),
        expected_late.len(),
        apps.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[test]
fn with_the_idle_policy_the_last_windows_close_when_input_stops() -> anyhow::Result<()> {
    let run = WordcountRun::new("windows-idle", 1)?;
    run.kafka.create_topic(&format!("{}-late", run.output), 1)?;
    let mut spec = run.spec("a", &[("WINDOWED_CLICKS_IDLE_MS", "2000")]);
    spec.binary = "windowed-clicks".to_owned();
    let mut app = AppProcess::start("a", spec)?;
    let base = eddy::record::wall_clock_ms() - 3_600_000;
    let base = base - base.rem_euclid(SIZE);
    // Three windows with clicks; no later click closes the last one (2 900 + 500 < 3 000).
    let clicks = [100, 700, 1_300, 2_900];
    run.kafka.produce(
        &run.input,
        clicks
            .iter()
            .map(|at| (Some(b"u".to_vec()), (base + at).to_string().into_bytes())),
    )?;
    run.kafka
        .tail(&run.output)?
        .wait_for(3, Duration::from_secs(120))
        .map_err(|e| anyhow::anyhow!("{e}\n{}", app.log_tail(30)))?;

    // The window store answers queries by key and time range (once the commit that wrote
    // the output is applied to RocksDB, just after the output became visible).
    let ops = app.ops()?;
    let mut last = String::new();
    eventually("the window store answers", Duration::from_secs(30), || {
        let (status, body) = ops.get_json(&format!(
            "/state/clicks/u?from={}&to={}",
            base + 1_000,
            base + 5_000
        ))?;
        let windows: Vec<(i64, i64)> = body["windows"]
            .as_array()
            .map(|w| {
                w.iter()
                    .filter_map(|w| Some((w["start"].as_i64()? - base, w["value"].as_i64()?)))
                    .collect()
            })
            .unwrap_or_default();
        last = format!("{status} {body}");
        Ok(status == 200 && windows == vec![(1_000, 1), (2_000, 1)])
    })
    .map_err(|e| anyhow::anyhow!("{e}; last answer: {last}"))?;
    let (status, _) = ops.get_json("/state/clicks/nobody")?;
    assert_eq!(status, 404);
    app.terminate(Duration::from_secs(60))?;
    let windows = windows_of(&run, &run.output, base)?;
    assert_eq!(
        windows,
        vec![
            (0, "2".to_owned()),
            (1_000, "1".to_owned()),
            (2_000, "1".to_owned())
        ]
    );
    Ok(())
}

/// The `(window start − base, count)` of every committed record of `topic`.
fn windows_of(run: &WordcountRun, topic: &str, base: i64) -> anyhow::Result<Vec<(i64, String)>> {
    Ok(run
        .kafka
        .read_all(topic, Isolation::ReadCommitted)?
        .iter()
        .map(|r| {
            let key = r.key.clone().unwrap_or_default();
            let start = key
                .len()
                .checked_sub(16)
                .and_then(|at| key.get(at..at + 8))
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(-1, i64::from_be_bytes);
            (start - base, r.value_str())
        })
        .collect())
}

#[test]
fn a_fork_from_a_savepoint_carries_open_windows_and_the_operators_progress() -> anyhow::Result<()> {
    let run = WordcountRun::new("windows-sp", 1)?;
    run.kafka.create_topic(&format!("{}-late", run.output), 1)?;
    let target = eddy_integration_tests::SnapshotTarget::directory(&run);
    let mut spec = run.spec("a", &[]);
    spec.binary = "windowed-clicks".to_owned();
    let mut original = AppProcess::start("a", spec)?;
    let base = eddy::record::wall_clock_ms() - 3_600_000;
    let base = base - base.rem_euclid(SIZE);
    let click = |topic: &str, times: &[i64]| {
        run.kafka.produce(
            topic,
            times
                .iter()
                .map(|at| (Some(b"u".to_vec()), (base + at).to_string().into_bytes())),
        )
    };
    // [0, 1000) closes at 1600 with 2 clicks; [1000, 2000) is open with 2.
    click(&run.input, &[100, 600, 1_200, 1_600])?;
    run.kafka
        .tail(&run.output)?
        .wait_for(1, Duration::from_secs(120))
        .map_err(|e| anyhow::anyhow!("{e}\n{}", original.log_tail(30)))?;
    let savepoint = eddy_integration_tests::create_savepoint(&run, &target)?;
    original.terminate(Duration::from_secs(60))?;
    assert_eq!(
        windows_of(&run, &run.output, base)?,
        vec![(0, "2".to_owned())]
    );

    let fork_output = eddy_testkit::unique_name("windows-fork-out");
    run.kafka.create_topic(&fork_output, 1)?;
    run.kafka.create_topic(&format!("{fork_output}-late"), 1)?;
    let mut spec = run.spec("fork", &[]);
    spec.binary = "windowed-clicks".to_owned();
    spec.application_id = format!("{}-fork", run.application_id);
    spec.output_topic.clone_from(&fork_output);
    spec.env
        .push(("EDDY__SNAPSHOT__FROM_SAVEPOINT".to_owned(), savepoint));
    let mut fork = AppProcess::start("fork", spec)?;
    // 1 900 counts in the open window; 400 is late by the savepoint's operator time (its
    // window closed before the savepoint); 2 600 closes [1000, 2000).
    click(&run.input, &[1_900, 400, 2_600])?;
    run.kafka
        .tail(&fork_output)?
        .wait_for(1, Duration::from_secs(120))
        .map_err(|e| anyhow::anyhow!("{e}\n{}", fork.log_tail(30)))?;
    run.kafka
        .tail(&format!("{fork_output}-late"))?
        .wait_for(1, Duration::from_secs(60))
        .map_err(|e| anyhow::anyhow!("{e}\n{}", fork.log_tail(30)))?;
    fork.terminate(Duration::from_secs(60))?;
    assert_eq!(
        windows_of(&run, &fork_output, base)?,
        vec![(1_000, "3".to_owned())],
        "the open window's two clicks came with the savepoint, and [0, 1000) is not sent again"
    );
    let late: Vec<String> = run
        .kafka
        .read_all(&format!("{fork_output}-late"), Isolation::ReadCommitted)?
        .iter()
        .map(|r| r.value_str())
        .collect();
    assert_eq!(late, vec![(base + 400).to_string()]);
    Ok(())
}
