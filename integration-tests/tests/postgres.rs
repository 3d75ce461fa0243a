//! Exactly-once into a real PostgreSQL server (started by the tests) under crashes at the
//! two-phase commit's edges and kill -9 at random points: every row once, nothing left
//! prepared. An autocommit sink under the same crash repeats rows, so the check can fail.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use eddy_integration_tests::{
    eventually, expected_counts, generate_lines, with_log_tails, AppProcess, WordcountRun,
};
use rand::{Rng, SeedableRng};

fn database() -> anyhow::Result<postgres::Client> {
    Ok(postgres::Client::connect(
        &eddy_testkit::postgres_url()?,
        postgres::NoTls,
    )?)
}

/// A table name of letters, digits and underscores, unique to the run.
fn table_name(run: &WordcountRun) -> String {
    run.application_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// Instance `name` of the test app `binary` writing to `table`.
fn start(
    run: &WordcountRun,
    binary: &str,
    name: &str,
    table: &str,
    env: &[(&str, &str)],
) -> anyhow::Result<AppProcess> {
    let mut spec = run.spec(name, env);
    spec.binary = binary.to_owned();
    spec.env
        .push(("PG_URL".to_owned(), eddy_testkit::postgres_url()?));
    spec.env.push(("PG_TABLE".to_owned(), table.to_owned()));
    AppProcess::start(name, spec)
}

/// A wordcount run whose counts also go to a fresh table `(word, count)`.
struct Counts {
    run: WordcountRun,
    table: String,
    db: postgres::Client,
    lines: Vec<String>,
    expected: std::collections::HashMap<String, u64>,
    total: u64,
}

impl Counts {
    /// Topics of 3 partitions, the table, and `count` input lines from `seed`.
    fn new(prefix: &str, seed: u64, count: usize) -> anyhow::Result<Counts> {
        let run = WordcountRun::new(prefix, 3)?;
        let table = table_name(&run);
        let mut db = database()?;
        db.batch_execute(&format!(
            "CREATE TABLE {table} (word text NOT NULL, count bigint NOT NULL)"
        ))?;
        let lines = generate_lines(seed, count, 300);
        let expected = expected_counts(lines.iter().map(String::as_str));
        let total = expected.values().sum();
        Ok(Counts {
            run,
            table,
            db,
            lines,
            expected,
            total,
        })
    }
}

/// The counts each word has rows for, in order.
fn rows_by_word(
    db: &mut postgres::Client,
    table: &str,
) -> anyhow::Result<BTreeMap<String, Vec<u64>>> {
    let mut out: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for row in db.query(
        &format!("SELECT word, count FROM {table} ORDER BY word, count"),
        &[],
    )? {
        let count: i64 = row.get(1);
        out.entry(row.get(0))
            .or_default()
            .push(u64::try_from(count)?);
    }
    Ok(out)
}

/// What is wrong with the rows: each word must have counts exactly 1..=n.
fn row_violations(
    rows: &BTreeMap<String, Vec<u64>>,
    expected: &std::collections::HashMap<String, u64>,
) -> Vec<String> {
    let mut violations = Vec::new();
    for (word, n) in expected {
        let want: Vec<u64> = (1..=*n).collect();
        match rows.get(word) {
            Some(got) if *got == want => {}
            Some(got) => violations.push(format!("{word}: rows {got:?}, want 1..={n}")),
            None => violations.push(format!("{word}: no rows, want 1..={n}")),
        }
    }
    for word in rows.keys().filter(|w| !expected.contains_key(*w)) {
        violations.push(format!("{word}: rows for a word never sent"));
    }
    violations
}

/// Every word's counts exactly 1..=n in the output topic and in the table's rows, and no
/// prepared transaction of the app's sink left.
fn assert_exactly_once(
    run: &WordcountRun,
    db: &mut postgres::Client,
    table: &str,
    expected: &std::collections::HashMap<String, u64>,
) -> anyhow::Result<()> {
    let violations = run.violations(expected)?;
    assert!(
        violations.is_empty(),
        "output topic:\n{}",
        violations.join("\n")
    );
    let violations = row_violations(&rows_by_word(db, table)?, expected);
    assert!(
        violations.is_empty(),
        "PostgreSQL rows:\n{}",
        violations.join("\n")
    );
    let left = prepared(db, "counts", &run.application_id)?;
    assert!(left.is_empty(), "prepared transactions left: {left:?}");
    Ok(())
}

/// The ids of the prepared transactions of the app's sink `sink` still in the server.
fn prepared(db: &mut postgres::Client, sink: &str, app: &str) -> anyhow::Result<Vec<String>> {
    let prefix = format!("{sink}@eddy:{app}:");
    Ok(db
        .query(
            "SELECT gid FROM pg_prepared_xacts WHERE left(gid, length($1)) = $1",
            &[&prefix],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Waits for the fault to crash `app`.
fn expect_crash(app: &mut AppProcess) -> anyhow::Result<()> {
    let status = app.wait_exit(Duration::from_secs(180))?;
    let log = app.log_text();
    anyhow::ensure!(
        !status.success()
            && (log.contains("EDDY_FAULT: aborting") || log.contains("pg-wordcount: aborting")),
        "the fault must crash {}:\n{}",
        app.name(),
        app.log_tail(30)
    );
    Ok(())
}

#[test]
fn the_two_phase_sink_writes_every_count_once_across_crashes_at_its_edges_and_kill_9(
) -> anyhow::Result<()> {
    let started = Instant::now();
    let Counts {
        run,
        table,
        mut db,
        lines,
        expected,
        total,
    } = Counts::new("pg-2pc", 41, 16_000)?;
    let (first, second) = lines.split_at(8_000);
    run.produce_lines(first)?;

    // One instance dies between its sinks' PREPARE and the Kafka commit: its prepared
    // transactions stay behind, and Kafka aborts what they belong to.
    let mut a = start(
        &run,
        "pg-wordcount",
        "a",
        &table,
        &[("EDDY_FAULT", "crash_after_prepare:2")],
    )?;
    expect_crash(&mut a)?;
    let aborted = prepared(&mut db, "counts", &run.application_id)?;
    anyhow::ensure!(
        !aborted.is_empty(),
        "the crash after PREPARE left nothing prepared"
    );
    // The next instance resolves them as its tasks start, then dies between a Kafka commit
    // and COMMIT PREPARED: its own prepared transactions stay behind, committed in Kafka.
    let mut b = start(
        &run,
        "pg-wordcount",
        "b",
        &table,
        &[("EDDY_FAULT", "crash_before_external_commit:2")],
    )?;
    expect_crash(&mut b)?;
    let after_b = prepared(&mut db, "counts", &run.application_id)?;
    let committed: Vec<String> = after_b
        .iter()
        .filter(|g| !aborted.contains(g))
        .cloned()
        .collect();
    anyhow::ensure!(
        !committed.is_empty(),
        "the crash before COMMIT PREPARED left nothing prepared: {after_b:?}"
    );

    let mut apps = vec![a, b];
    for app in &mut apps {
        app.restart_with(vec![("EDDY_FAULT".to_owned(), String::new())])?;
    }
    // Each task resolves what was left before it runs: once both instances are ready, every
    // transaction both crashes left is resolved, and those Kafka committed are committed.
    let resolved = (|| -> anyhow::Result<f64> {
        let clients = apps
            .iter()
            .map(AppProcess::ops)
            .collect::<anyhow::Result<Vec<_>>>()?;
        for ops in &clients {
            ops.wait_status("/ready", 200, Duration::from_secs(180))?;
        }
        clients
            .iter()
            .map(|o| o.metric("eddy_external_resolved_commits_total", &[]))
            .sum()
    })()
    .map_err(|e| with_log_tails(&apps, e))?;
    assert!(
        resolved >= 1.0,
        "the transactions Kafka committed were committed: {resolved}"
    );
    // (A transaction of the running instances may be prepared at this moment: only the
    // crashes' are checked.)
    let left = prepared(&mut db, "counts", &run.application_id)?;
    assert!(
        left.iter()
            .all(|gid| !after_b.contains(gid) && !aborted.contains(gid)),
        "the crashes' transactions were not all resolved: {left:?}"
    );

    // kill -9 at random points while the second half is processed.
    run.produce_lines(second)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut tail = run.kafka.tail(&run.output)?;
    let mut kills = 0;
    for step in 1..=3u64 {
        let target = total * (3 + step) / 7;
        tail.wait_for(target, Duration::from_secs(180))
            .map_err(|e| with_log_tails(&apps, e))?;
        let victim = rng.random_range(0..apps.len());
        apps[victim].kill9()?;
        kills += 1;
        apps[victim].restart()?;
    }
    tail.wait_for(total, Duration::from_secs(240))
        .map_err(|e| with_log_tails(&apps, e))?;
    eventually(
        "no prepared transaction is left",
        Duration::from_secs(60),
        || Ok(prepared(&mut db, "counts", &run.application_id)?.is_empty()),
    )
    .map_err(|e| with_log_tails(&apps, e))?;
    for app in &mut apps {
        app.terminate(Duration::from_secs(60))?;
    }

    assert_exactly_once(&run, &mut db, &table, &expected)?;
    println!(
        "postgres two-phase: {total} rows exactly once; prepared transactions left by a crash after PREPARE ({}) rolled back and by a crash before COMMIT PREPARED ({}) committed; {kills} kill -9; {:.1} s",
        aborted.len(),
        committed.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[test]
fn an_autocommit_sink_under_the_same_crash_repeats_rows() -> anyhow::Result<()> {
    let Counts {
        run,
        table,
        mut db,
        lines,
        expected,
        total,
    } = Counts::new("pg-autocommit", 42, 6_000)?;
    run.produce_lines(&lines)?;
    // The sink's 3000th row is in PostgreSQL when the process dies, before the Kafka commit
    // of the record that made it: the restarted instance processes that record again.
    let mut app = start(
        &run,
        "pg-wordcount",
        "a",
        &table,
        &[("PG_SINK", "autocommit"), ("PG_CRASH_AFTER_ROWS", "3000")],
    )?;
    expect_crash(&mut app)?;
    app.restart_with(vec![("PG_CRASH_AFTER_ROWS".to_owned(), String::new())])?;
    run.kafka
        .tail(&run.output)?
        .wait_for(total, Duration::from_secs(180))
        .map_err(|e| with_log_tails(std::slice::from_ref(&app), e))?;
    app.terminate(Duration::from_secs(60))?;
    assert!(
        run.violations(&expected)?.is_empty(),
        "Kafka's side stays exact"
    );
    let violations = row_violations(&rows_by_word(&mut db, &table)?, &expected);
    assert!(
        !violations.is_empty(),
        "an autocommit sink should have repeated the crashed commit's rows"
    );
    Ok(())
}

#[test]
fn the_topic_sink_writes_every_record_once_across_kill_9_and_take_overs() -> anyhow::Result<()> {
    const RECORDS: u64 = 30_000;
    let started = Instant::now();
    let run = WordcountRun::new("pg-topic", 3)?;
    let table = table_name(&run);
    let mut db = database()?;
    db.batch_execute(&format!(
        "CREATE TABLE {table} (k text NOT NULL, v bigint NOT NULL)"
    ))?;
    run.kafka.produce(
        &run.input,
        (0..RECORDS).map(|i| {
            (
                Some(format!("k{i}").into_bytes()),
                i.to_string().into_bytes(),
            )
        }),
    )?;
    let rows = |db: &mut postgres::Client| -> anyhow::Result<u64> {
        let n: i64 = db
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])?
            .get(0);
        Ok(u64::try_from(n)?)
    };
    let mut apps = vec![
        start(&run, "pg-topic-sink", "a", &table, &[])?,
        start(&run, "pg-topic-sink", "b", &table, &[])?,
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut kills = 0;
    for step in 1..=4u64 {
        let target = RECORDS * step / 6;
        eventually(&format!("{target} rows"), Duration::from_secs(120), || {
            Ok(rows(&mut db)? >= target)
        })
        .map_err(|e| with_log_tails(&apps, e))?;
        let victim = rng.random_range(0..apps.len());
        apps[victim].kill9()?;
        kills += 1;
        apps[victim].restart()?;
    }
    eventually("every record's row", Duration::from_secs(180), || {
        Ok(rows(&mut db)? >= RECORDS)
    })
    .map_err(|e| with_log_tails(&apps, e))?;
    for app in &mut apps {
        app.terminate(Duration::from_secs(60))?;
    }
    let row = db.query_one(
        &format!("SELECT count(*), count(DISTINCT k), coalesce(sum(v), 0)::bigint FROM {table}"),
        &[],
    )?;
    let (n, distinct, sum): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    let want_sum = i64::try_from(RECORDS * (RECORDS - 1) / 2)?;
    assert_eq!(
        (n, distinct, sum),
        (i64::try_from(RECORDS)?, i64::try_from(RECORDS)?, want_sum),
        "every record once"
    );
    let offsets: i64 = db
        .query_one(
            "SELECT coalesce(sum(next_offset), 0)::bigint FROM eddy_topic_offsets WHERE sink = $1",
            &[&table],
        )?
        .get(0);
    assert_eq!(
        offsets,
        i64::try_from(RECORDS)?,
        "the stored offsets end where the topic ends"
    );
    println!(
        "postgres topic sink: {RECORDS} rows exactly once, {kills} kill -9, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[test]
fn a_zombie_frozen_after_prepare_never_commits_its_rows() -> anyhow::Result<()> {
    let Counts {
        run,
        table,
        mut db,
        lines,
        expected,
        total,
    } = Counts::new("pg-zombie", 43, 12_000)?;
    let (first, second) = lines.split_at(6_000);
    let mut tail = run.kafka.tail(&run.output)?;

    // The zombie freezes holding a prepared transaction whose Kafka transaction is open.
    run.produce_lines(first)?;
    let zombie = start(
        &run,
        "pg-wordcount",
        "zombie",
        &table,
        &[("EDDY_FAULT", "stop_after_prepare:3")],
    )?;
    eventually(
        "the zombie freezes after PREPARE",
        Duration::from_secs(120),
        || {
            Ok(zombie
                .log_text()
                .contains("EDDY_FAULT: stopping the process after the external PREPARE"))
        },
    )
    .map_err(|e| with_log_tails(std::slice::from_ref(&zombie), e))?;
    let frozen = prepared(&mut db, "counts", &run.application_id)?;
    anyhow::ensure!(
        !frozen.is_empty(),
        "the zombie holds no prepared transaction"
    );

    // The successor takes its tasks, resolves the zombie's transaction (its Kafka transaction
    // is aborted by the broker) and processes everything.
    let successor = start(&run, "pg-wordcount", "successor", &table, &[])?;
    let mut apps = vec![zombie, successor];
    tail.wait_for(
        expected_counts(first.iter().map(String::as_str))
            .values()
            .sum(),
        Duration::from_secs(180),
    )
    .map_err(|e| with_log_tails(&apps, e))?;
    let left = prepared(&mut db, "counts", &run.application_id)?;
    assert!(
        left.iter().all(|gid| !frozen.contains(gid)),
        "the zombie's transaction was resolved: {left:?}"
    );

    // Thawed, the zombie's Kafka commit fails: it rolls back (or finds rolled back) what it
    // prepared and starts over.
    apps[0].signal("CONT")?;
    run.produce_lines(second)?;
    tail.wait_for(total, Duration::from_secs(180))
        .map_err(|e| with_log_tails(&apps, e))?;
    for app in &mut apps {
        app.terminate(Duration::from_secs(60))?;
    }
    assert_exactly_once(&run, &mut db, &table, &expected)?;
    Ok(())
}
