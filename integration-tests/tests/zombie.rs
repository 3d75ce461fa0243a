//! A zombie instance: frozen with SIGSTOP in the middle of its work while another instance
//! takes over, then thawed. Nothing it had open may commit; the output stays exact.

use std::time::Duration;

use eddy_integration_tests::{
    eventually, expected_counts, generate_lines, AppProcess, WordcountRun,
};

#[test]
fn a_frozen_instance_is_fenced_when_it_wakes_up() -> anyhow::Result<()> {
    let run = WordcountRun::new("zombie", 3)?;
    let lines = generate_lines(11, 24_000, 500);
    let (first, rest) = lines.split_at(2_000);
    let (second, third) = rest.split_at(20_000);
    let words = |part: &[String]| -> u64 {
        expected_counts(part.iter().map(String::as_str))
            .values()
            .sum()
    };
    let mut tail = run.kafka.tail(&run.output)?;

    let mut zombie = run.start("zombie", &[])?;
    run.produce_lines(first)?;
    tail.wait_for(words(first), Duration::from_secs(120))?;

    // Freeze it while it is busy with the second chunk: a transaction is open.
    run.produce_lines(second)?;
    tail.count(Duration::from_millis(300))?;
    zombie.signal("STOP")?;

    // The successor takes over once the zombie's session expires, and restores only after
    // the zombie's open transaction is aborted by the broker.
    let mut successor = run.start("successor", &[])?;
    tail.wait_for(words(first) + words(second), Duration::from_secs(180))
        .map_err(|e| anyhow::anyhow!("{e}; successor log:\n{}", successor.log_tail(30)))?;

    zombie.signal("CONT")?;
    run.produce_lines(third)?;
    let all = words(&lines);
    tail.wait_for(all, Duration::from_secs(180))
        .map_err(|e| anyhow::anyhow!("{e}; zombie log:\n{}", zombie.log_tail(30)))?;
    let zombie_restarts = zombie.ops()?.metric("eddy_thread_restarts_total", &[])?;
    zombie.terminate(Duration::from_secs(60))?;
    successor.terminate(Duration::from_secs(60))?;

    let violations = run.violations(&expected_counts(lines.iter().map(String::as_str)))?;
    assert!(
        violations.is_empty(),
        "exactness violated:\n{}",
        violations.join("\n")
    );
    run.assert_settled()?;
    assert!(
        zombie_restarts >= 1.0,
        "the zombie must notice it lost its partitions and start over:\n{}",
        zombie.log_tail(30)
    );
    Ok(())
}

/// A zombie whose next transaction would carry only punctuation output (no input offsets):
/// frozen right after a commit, thawed after its task moved. Its punctuation must not commit,
/// so every tick count appears once in the committed output.
#[test]
fn a_frozen_instance_cannot_commit_punctuation_output_after_its_task_moved() -> anyhow::Result<()> {
    let run = WordcountRun::new("zombie-tick", 1)?;
    let spec = |name: &str| {
        let mut spec = run.spec(name, &[("EDDY__APP__TICK_MS", "1500")]);
        spec.binary = "ticker".to_owned();
        spec
    };
    // Input records give the task committed offsets to fence with.
    run.kafka.produce(
        &run.input,
        (0..3).map(|i| (Some(format!("k{i}").into_bytes()), b"x".to_vec())),
    )?;
    let mut tail = run.kafka.tail(&run.output)?;
    let mut zombie = AppProcess::start("zombie", spec("zombie"))?;
    let seen = tail.wait_for(3, Duration::from_secs(120))?;
    // A tick just committed: the next one is 1.5 s away, so no transaction is open.
    tail.wait_for(seen + 1, Duration::from_secs(30))?;
    zombie.signal("STOP")?;

    let mut successor = AppProcess::start("successor", spec("successor"))?;
    let before = tail.count(Duration::ZERO)?;
    tail.wait_for(before + 3, Duration::from_secs(120))
        .map_err(|e| anyhow::anyhow!("{e}; successor log:\n{}", successor.log_tail(30)))?;

    // Thawed, the zombie's tick is overdue: it fires at once, with state the successor
    // has moved past.
    zombie.signal("CONT")?;
    let thawed = tail.count(Duration::ZERO)?;
    tail.wait_for(thawed + 3, Duration::from_secs(60))?;
    zombie.terminate(Duration::from_secs(60))?;
    successor.terminate(Duration::from_secs(60))?;

    let output = run
        .kafka
        .read_all(&run.output, eddy_testkit::Isolation::ReadCommitted)?;
    let ticks: Vec<u64> = output
        .iter()
        .filter_map(|r| r.value_str().parse().ok())
        .collect();
    let expected: Vec<u64> = (1..=ticks.len() as u64).collect();
    assert_eq!(
        ticks,
        expected,
        "each tick count exactly once, in order; zombie log:\n{}",
        zombie.log_tail(20)
    );
    Ok(())
}

/// A zombie frozen after its input offsets joined a transaction but before its changelog
/// records reached the brokers (as when the changelog's leader is unreachable), thawed once
/// its successor owns the task. The zombie's transaction may still commit: the successor must
/// not take the changelog's end as its restore target before the committed offset settled,
/// or it would run on state missing that transaction's changes and count its words again
/// from lower values.
#[test]
fn a_successor_restores_what_a_zombie_commits_after_the_task_moved() -> anyhow::Result<()> {
    let run = WordcountRun::new("zombie-late-changelog", 1)?;
    let lines = generate_lines(23, 6_000, 200);
    let (first, second) = lines.split_at(3_000);
    // The zombie's transaction must outlive its session, so the successor is waiting on it.
    let long_transactions = ("EDDY__KAFKA__TRANSACTION_TIMEOUT_MS", "90000");
    let zombie = run.start(
        "zombie",
        &[("EDDY_FAULT", "stop_after_offsets:1"), long_transactions],
    )?;
    run.produce_lines(first)?;
    eventually(
        "the zombie stops itself after sending its offsets",
        Duration::from_secs(120),
        || Ok(zombie.is_stopped()),
    )?;

    let successor = run.start("successor", &[])?;
    let successor_ops = successor.ops()?;
    eventually(
        "the successor waits for the zombie's offsets to settle",
        Duration::from_secs(120),
        || Ok(successor_ops.metric("eddy_offset_settle_waits_total", &[])? >= 1.0),
    )
    .map_err(|e| anyhow::anyhow!("{e}; successor log:\n{}", successor.log_tail(30)))?;
    zombie.signal("CONT")?;

    run.produce_lines(second)?;
    let expected = expected_counts(lines.iter().map(String::as_str));
    run.finish_exactly(&mut [zombie, successor], &expected)?;
    Ok(())
}
