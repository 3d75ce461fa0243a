//! Crashes at chosen points of the commit, against the real broker: exactly-once recovers
//! exactly; at-least-once, under the same crash, repeats outputs (so the check can fail).

use std::time::Duration;

use eddy_integration_tests::{expected_counts, generate_lines, WordcountRun};

#[test]
fn crash_between_the_kafka_commit_and_the_rocksdb_apply_recovers_exactly() -> anyhow::Result<()> {
    let run = WordcountRun::new("crash-apply", 3)?;
    let lines = generate_lines(7, 20_000, 300);
    let expected = expected_counts(lines.iter().map(String::as_str));
    run.produce_lines(&lines)?;

    // The fault aborts the process right after the 2nd Kafka commit with state changes
    // succeeded, before they reached RocksDB: RocksDB is one commit behind its changelog.
    let mut app = run.start("a", &[("EDDY_FAULT", "crash_after_commit:2")])?;
    let status = app.wait_exit(Duration::from_secs(120))?;
    assert!(!status.success(), "the fault must crash the process");
    assert!(
        app.log_text()
            .contains("after the Kafka commit, before the RocksDB apply of commit 2"),
        "{}",
        app.log_tail(30)
    );

    app.restart_with(vec![("EDDY_FAULT".to_owned(), String::new())])?;
    // Recovery replayed the changelog from the positions stored with the data, not from the
    // beginning: the first state commit was applied to RocksDB, so some store resumes past 0.
    let ops = app.ops()?;
    ops.wait_status("/ready", 200, Duration::from_secs(180))
        .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", app.log_tail(40)))?;
    let starts: Vec<i64> = ops
        .tasks()?
        .iter()
        .flat_map(|t| t["replays"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["from"].as_i64())
        .collect();
    assert!(!starts.is_empty(), "no store replayed its changelog");
    assert!(
        starts.iter().any(|&s| s != 0),
        "every store restored from the beginning: {starts:?}"
    );
    run.finish_exactly(&mut [app], &expected)?;
    Ok(())
}

#[test]
fn at_least_once_under_the_same_kind_of_crash_repeats_outputs() -> anyhow::Result<()> {
    let run = WordcountRun::new("crash-alos", 3)?;
    let lines = generate_lines(8, 6_000, 300);
    let expected = expected_counts(lines.iter().map(String::as_str));
    let total: u64 = expected.values().sum();
    run.produce_lines(&lines)?;

    let alos = ("EDDY__PROCESSING__GUARANTEE", "at_least_once");
    // Outputs of the 2nd batch are acknowledged, then the process dies before its offsets
    // commit: the restarted instance processes those inputs again.
    let mut app = run.start("a", &[alos, ("EDDY_FAULT", "crash_before_commit:2")])?;
    let status = app.wait_exit(Duration::from_secs(120))?;
    assert!(!status.success(), "the fault must crash the process");
    app.restart_with(vec![("EDDY_FAULT".to_owned(), String::new())])?;
    let mut tail = run.kafka.tail(&run.output)?;
    tail.wait_for(total, Duration::from_secs(180))
        .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", app.log_tail(60)))?;
    app.terminate(Duration::from_secs(60))?;

    let violations = run.violations(&expected)?;
    // The crashed batch's inputs are processed twice: counts repeat or overshoot.
    assert!(
        violations
            .iter()
            .any(|v| v.starts_with("repeat:") || v.starts_with("overcount:")),
        "at-least-once should have duplicated work after the crash; violations: {violations:?}"
    );
    Ok(())
}

#[test]
fn a_static_member_restarted_after_kill_9_resumes_long_before_its_session_expires(
) -> anyhow::Result<()> {
    use std::time::Instant;
    let run = WordcountRun::new("static-restart", 3)?;
    let lines = generate_lines(9, 4_000, 200);
    let (first, second) = lines.split_at(2_000);
    let expected = expected_counts(lines.iter().map(String::as_str));
    let first_words: u64 = expected_counts(first.iter().map(String::as_str))
        .values()
        .sum();
    let total: u64 = expected.values().sum();
    // A dynamic member's restart would wait for its dead predecessor's 60-s session to expire
    // before the group assigns anything; a static member replaces it at once.
    let env = [
        ("EDDY__PROCESSING__STATIC_MEMBERSHIP", "true"),
        ("EDDY__PROCESSING__SESSION_TIMEOUT_MS", "60000"),
    ];
    let mut app = run.start("a", &env)?;
    run.produce_lines(first)?;
    let mut tail = run.kafka.tail(&run.output)?;
    tail.wait_for(first_words, Duration::from_secs(120))
        .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", app.log_tail(40)))?;

    app.kill9()?;
    let killed = Instant::now();
    run.produce_lines(second)?;
    app.restart()?;
    tail.wait_for(total, Duration::from_secs(30))
        .map_err(|e| anyhow::anyhow!("{e}; log:\n{}", app.log_tail(40)))?;
    println!(
        "all output {:.1} s after kill -9 (session timeout 60 s)",
        killed.elapsed().as_secs_f64()
    );
    app.terminate(Duration::from_secs(60))?;
    let violations = run.violations(&expected)?;
    assert!(
        violations.is_empty(),
        "exactness violated:\n{}",
        violations.join("\n")
    );
    Ok(())
}

#[test]
fn a_committed_transaction_whose_offsets_the_group_lost_is_not_taken_twice() -> anyhow::Result<()> {
    let run = WordcountRun::new("lost-offsets", 3)?;
    let lines = generate_lines(10, 20_000, 300);
    let expected = expected_counts(lines.iter().map(String::as_str));
    run.produce_lines(&lines)?;

    // The 2nd commit with state changes commits the counts' changelog records and outputs
    // but not the count tasks' input offsets (as a group coordinator that lost them after a
    // failover shows it), then the process aborts before RocksDB took the changes: the
    // restart replays that transaction's changelog records while the group shows the
    // offsets of the commit before it.
    let mut app = run.start("a", &[("EDDY_FAULT", "lose_state_offsets:2")])?;
    let status = app.wait_exit(Duration::from_secs(120))?;
    assert!(!status.success(), "the fault must crash the process");
    assert!(
        app.log_text()
            .contains("after committing without the offsets of changed state"),
        "{}",
        app.log_tail(30)
    );

    app.restart_with(vec![("EDDY_FAULT".to_owned(), String::new())])?;
    let mut apps = [app];
    run.finish_exactly(&mut apps, &expected)?;
    // The restart saw the state past the offsets and resumed where the state stood.
    assert!(
        apps[0]
            .log_text()
            .contains("the restored state stands past the committed offset"),
        "{}",
        apps[0].log_tail(40)
    );
    Ok(())
}
