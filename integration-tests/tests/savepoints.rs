//! Savepoints against the real broker: rollback to an older savepoint and a fork into a
//! second application id, each with the store in a directory and on a real S3 server, and an
//! instance that slept through a restore.

use std::time::Duration;

use eddy_integration_tests::{
    borrowed, create_savepoint, eventually, expected_counts, generate_lines, word_sequences,
    SnapshotTarget, WordcountRun,
};
use eddy_testkit::Isolation;

const WAIT: Duration = Duration::from_secs(300);

#[test]
fn rollback_to_a_savepoint_reproduces_its_outputs_and_ends_where_an_uninterrupted_run_does(
) -> anyhow::Result<()> {
    let run = WordcountRun::new("sp-rollback", 4)?;
    let target = SnapshotTarget::directory(&run);
    rollback(&run, &target)
}

#[test]
fn rollback_to_a_savepoint_on_s3_reproduces_its_outputs() -> anyhow::Result<()> {
    let run = WordcountRun::new("sp-rollback-s3", 4)?;
    let target = SnapshotTarget::s3(&run)?;
    rollback(&run, &target)
}

/// Takes a savepoint into `target`, runs on, rolls back to it with one instance that kept
/// newer local state and one with none, and checks the replay and the end state.
fn rollback(run: &WordcountRun, target: &SnapshotTarget) -> anyhow::Result<()> {
    let batch1 = generate_lines(21, 6_000, 200);
    let batch2 = generate_lines(22, 6_000, 200);
    let words1: u64 = expected_counts(batch1.iter().map(String::as_str))
        .values()
        .sum();
    let all = expected_counts(batch1.iter().chain(&batch2).map(String::as_str));
    let words_all: u64 = all.values().sum();

    let s3 = target.env();
    let mut apps = vec![
        run.start("a", &borrowed(s3))?,
        run.start("b", &borrowed(s3))?,
    ];
    run.produce_lines(&batch1)?;
    run.kafka.tail(&run.output)?.wait_for(words1, WAIT)?;
    let savepoint = create_savepoint(run, target)?;
    assert!(target.has_manifest(&savepoint)?, "{savepoint}");

    // The app goes on past the savepoint.
    let mark = run
        .kafka
        .end_offsets(&run.output, Isolation::ReadCommitted)?;
    run.produce_lines(&batch2)?;
    run.kafka.tail(&run.output)?.wait_for(words_all, WAIT)?;
    for app in &mut apps {
        app.terminate(Duration::from_secs(60))?;
    }
    let first = run.kafka.read_all(&run.output, Isolation::ReadCommitted)?;
    let original = word_sequences(&first, Some(&mark));

    // Roll back: `a` keeps its (newer) local state, `c` starts with none. Both must load
    // the savepoint's state and reprocess batch 2 from the savepoint's offsets.
    let mut env = borrowed(s3);
    env.push(("EDDY__SNAPSHOT__FROM_SAVEPOINT", savepoint.as_str()));
    let mut apps = vec![run.start("a", &env)?, run.start("c", &env)?];
    let rollback_mark = run
        .kafka
        .end_offsets(&run.output, Isolation::ReadCommitted)?;
    run.kafka
        .tail(&run.output)?
        .wait_for(words_all + (words_all - words1), WAIT)
        .map_err(|e| anyhow::anyhow!("{e}\n{}\n{}", apps[0].log_tail(30), apps[1].log_tail(30)))?;
    // `c` may have reprocessed everything before the group gave `a` its share; `a` replaces
    // its newer local state with the savepoint's once it gets a stateful task.
    let a_ops = apps[0].ops()?;
    eventually(
        "instance a had newer local state and must have replaced it",
        WAIT,
        || Ok(a_ops.metric("eddy_task_starts_total", &[("source", "savepoint")])? >= 1.0),
    )
    .map_err(|e| anyhow::anyhow!("{e}:\n{}", apps[0].log_tail(40)))?;
    // Exactly one of the two applied the savepoint; the other followed.
    let mut applied = 0.0;
    for app in &apps {
        applied += app.ops()?.metric("eddy_savepoints_applied_total", &[])?;
    }
    assert!(
        (applied - 1.0).abs() < f64::EPSILON,
        "savepoint applied {applied} times"
    );
    for app in &mut apps {
        app.terminate(Duration::from_secs(60))?;
    }
    run.assert_settled()?;
    let second = run.kafka.read_all(&run.output, Isolation::ReadCommitted)?;
    let replayed = word_sequences(&second, Some(&rollback_mark));
    assert_eq!(
        replayed, original,
        "after the rollback every word must repeat exactly the counts it had after the savepoint"
    );
    // And the run ends where an uninterrupted run over both batches ends.
    let finals = word_sequences(&second, None);
    for (word, n) in &all {
        assert_eq!(
            finals.get(word).and_then(|s| s.last()),
            Some(n),
            "final count of word `{word}`"
        );
    }
    Ok(())
}

#[test]
fn a_fork_from_a_savepoint_produces_the_same_outputs_as_the_original() -> anyhow::Result<()> {
    let run = WordcountRun::new("sp-fork", 3)?;
    let target = SnapshotTarget::directory(&run);
    fork(&run, &target)
}

#[test]
fn a_fork_from_a_savepoint_on_s3_produces_the_same_outputs_as_the_original() -> anyhow::Result<()> {
    let run = WordcountRun::new("sp-fork-s3", 3)?;
    let target = SnapshotTarget::s3(&run)?;
    fork(&run, &target)
}

/// Forks the app from a savepoint in `target` into a second application id and compares
/// the fork's output with the original's.
fn fork(run: &WordcountRun, target: &SnapshotTarget) -> anyhow::Result<()> {
    let batch1 = generate_lines(31, 5_000, 150);
    let batch2 = generate_lines(32, 5_000, 150);
    let words1: u64 = expected_counts(batch1.iter().map(String::as_str))
        .values()
        .sum();
    let expected2 = expected_counts(batch2.iter().map(String::as_str));
    let words2: u64 = expected2.values().sum();

    let mut original = run.start("a", &borrowed(target.env()))?;
    run.produce_lines(&batch1)?;
    run.kafka.tail(&run.output)?.wait_for(words1, WAIT)?;
    let savepoint = create_savepoint(run, target)?;
    let mark = run
        .kafka
        .end_offsets(&run.output, Isolation::ReadCommitted)?;

    // The fork: a new application id writing to its own output topic.
    let fork_output = eddy_testkit::unique_name("sp-fork-out");
    run.kafka.create_topic(&fork_output, 3)?;
    let fork_id = format!("{}-fork", run.application_id);
    let mut spec = run.spec("fork", &borrowed(target.env()));
    spec.application_id.clone_from(&fork_id);
    spec.output_topic.clone_from(&fork_output);
    spec.env
        .push(("EDDY__SNAPSHOT__FROM_SAVEPOINT".to_owned(), savepoint));
    let mut fork = eddy_integration_tests::AppProcess::start("fork", spec)?;

    run.produce_lines(&batch2)?;
    run.kafka
        .tail(&run.output)?
        .wait_for(words1 + words2, WAIT)?;
    run.kafka
        .tail(&fork_output)?
        .wait_for(words2, WAIT)
        .map_err(|e| anyhow::anyhow!("{e}\n{}", fork.log_tail(40)))?;
    original.terminate(Duration::from_secs(60))?;
    fork.terminate(Duration::from_secs(60))?;

    let from_original = word_sequences(
        &run.kafka.read_all(&run.output, Isolation::ReadCommitted)?,
        Some(&mark),
    );
    let from_fork = word_sequences(
        &run.kafka.read_all(&fork_output, Isolation::ReadCommitted)?,
        None,
    );
    assert_eq!(
        from_fork.len(),
        expected2.len(),
        "every word of batch 2 has fork output"
    );
    assert_eq!(
        from_fork, from_original,
        "the fork continues from the savepoint's state exactly as the original does"
    );
    assert_eq!(run.kafka.group_members(&fork_id)?, 0);
    Ok(())
}

/// An instance frozen while the app was restored from a savepoint rejoins without restarting:
/// it must not bring its old timeline's state into the new one. It stops, saying why.
#[test]
fn an_instance_that_slept_through_a_restore_stops_instead_of_writing_its_old_timeline(
) -> anyhow::Result<()> {
    let run = WordcountRun::new("sp-sleeper", 2)?;
    let target = SnapshotTarget::directory(&run);
    let batch1 = generate_lines(41, 2_000, 100);
    let words1: u64 = expected_counts(batch1.iter().map(String::as_str))
        .values()
        .sum();
    let mut sleeper = run.start("sleeper", &[])?;
    run.produce_lines(&batch1)?;
    run.kafka.tail(&run.output)?.wait_for(words1, WAIT)?;
    let savepoint = create_savepoint(&run, &target)?;
    sleeper.signal("STOP")?;

    // The restore waits until the frozen member's session has expired.
    let mut restored = run.start(
        "restored",
        &[("EDDY__SNAPSHOT__FROM_SAVEPOINT", &savepoint)],
    )?;
    let batch2 = generate_lines(42, 500, 100);
    let words2: u64 = expected_counts(batch2.iter().map(String::as_str))
        .values()
        .sum();
    run.produce_lines(&batch2)?;
    run.kafka
        .tail(&run.output)?
        .wait_for(words1 + words2, WAIT)
        .map_err(|e| anyhow::anyhow!("{e}\n{}", restored.log_tail(30)))?;

    sleeper.signal("CONT")?;
    let status = sleeper.wait_exit(Duration::from_secs(120))?;
    assert!(!status.success());
    assert!(
        sleeper.log_text().contains("was applied to the app"),
        "{}",
        sleeper.log_tail(20)
    );
    restored.terminate(Duration::from_secs(60))?;
    Ok(())
}
