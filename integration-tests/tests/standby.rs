//! Standby replicas against the real broker: with `processing.standby_replicas = 1` every
//! stateful task has a caught-up copy on the other instance, so when its owner is killed the
//! new owner replays only the changelog records the copy had not yet seen.

use std::collections::HashMap;
use std::time::Duration;

use eddy_integration_tests::ops::OpsClient;
use eddy_integration_tests::{
    eventually_every, expected_counts, generate_lines, on_timeout, AppProcess, WordcountRun,
};

const WAIT: Duration = Duration::from_secs(180);

/// Checks that each of `tasks`, as `b` runs it now, started from a copy (`copies` names the
/// state sources allowed; `source` says what made the copy) holding at least 90% of its
/// changelog, printing what each replayed.
fn assert_resumed_from_copies(
    b: &OpsClient,
    tasks: &[impl AsRef<str>],
    copies: &[&str],
    source: &str,
) -> anyhow::Result<()> {
    let reported = b.tasks()?;
    for task in tasks {
        let task = task.as_ref();
        let status = reported
            .iter()
            .find(|t| t["task"] == task)
            .ok_or_else(|| anyhow::anyhow!("b does not run {task}: {reported:?}"))?;
        assert!(
            copies.iter().any(|c| status["state_source"] == *c),
            "task {task} should have started from {source} ({copies:?}): {status}"
        );
        let replays = status["replays"].as_array().cloned().unwrap_or_default();
        assert!(
            !replays.is_empty(),
            "task {task} planned no replay: {status}"
        );
        for replay in replays {
            let (from, to) = (
                replay["from"].as_i64().unwrap_or(-1),
                replay["to"].as_i64().unwrap_or(-1),
            );
            println!(
                "task {task}: restored from {from} to {to} (replayed {})",
                to - from
            );
            assert!(
                from > 0 && (to - from) * 10 <= to,
                "task {task} replayed {} of {to} changelog records; {source} should have held at least 90%",
                to - from
            );
        }
    }
    Ok(())
}

/// Kills `a`, feeds `batch2`, and waits until `b` alone has produced every count of `all`.
fn kill_and_wait_for_the_rest(
    run: &WordcountRun,
    a: &mut AppProcess,
    b: &AppProcess,
    batch2: &[String],
    all: &HashMap<String, u64>,
) -> anyhow::Result<()> {
    a.kill9()?;
    run.produce_lines(batch2)?;
    let total: u64 = all.values().sum();
    run.kafka
        .tail(&run.output)?
        .wait_for(total, WAIT)
        .map_err(|e| anyhow::anyhow!("{e}\n{}", b.log_tail(30)))?;
    Ok(())
}

#[test]
fn a_killed_instances_tasks_resume_from_the_standby_copies() -> anyhow::Result<()> {
    let run = WordcountRun::new("standby", 4)?;
    let env = [("EDDY__PROCESSING__STANDBY_REPLICAS", "1")];
    let b = run.start("b", &env)?;
    let b_ops = b.ops()?;
    b_ops.wait_status("/ready", 200, WAIT)?;
    let a = run.start("a", &env)?;
    let a_ops = a.ops()?;

    let batch1 = generate_lines(61, 20_000, 3_000);
    let batch2 = generate_lines(62, 2_000, 3_000);
    let words1: u64 = expected_counts(batch1.iter().map(String::as_str))
        .values()
        .sum();
    let all = expected_counts(batch1.iter().chain(&batch2).map(String::as_str));
    run.produce_lines(&batch1)?;
    run.kafka.tail(&run.output)?.wait_for(words1, WAIT)?;

    // Every count task (4) has one caught-up standby on the instance that does not run it.
    let count_tasks = |ready: &serde_json::Value| -> Vec<String> {
        ready["threads"]
            .as_object()
            .into_iter()
            .flat_map(|t| t.values())
            .flat_map(|t| t["tasks"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t["task"].as_str().map(str::to_owned))
            .filter(|t| t.starts_with("1_"))
            .collect()
    };
    let (mut a_tasks, mut b_tasks) = (Vec::new(), Vec::new());
    let mut last = (serde_json::Value::Null, serde_json::Value::Null);
    let interval = Duration::from_millis(250);
    let waited = eventually_every("standbys catching up", WAIT, interval, || {
        let (_, a_ready) = a_ops.get_json("/ready")?;
        let (_, b_ready) = b_ops.get_json("/ready")?;
        let standbys: Vec<serde_json::Value> = [&a_ready, &b_ready]
            .iter()
            .flat_map(|r| r["standbys"].as_array().cloned().unwrap_or_default())
            .collect();
        (a_tasks, b_tasks) = (count_tasks(&a_ready), count_tasks(&b_ready));
        let caught_up = standbys.len() == 4
            && standbys.iter().all(|s| s["lag"] == 0)
            && a_tasks.len() + b_tasks.len() == 4;
        last = (a_ready, b_ready);
        Ok(caught_up)
    });
    on_timeout(waited, || {
        anyhow::bail!("standbys never caught up: a {}\nb {}", last.0, last.1)
    })?;

    // The instance that runs count tasks dies (the group may have given them all to one).
    let (mut victim, mut survivor, survivor_ops, moved) = if a_tasks.is_empty() {
        (b, a, a_ops, b_tasks)
    } else {
        (a, b, b_ops, a_tasks)
    };
    println!("killing {} with count tasks {moved:?}", victim.name());
    kill_and_wait_for_the_rest(&run, &mut victim, &survivor, &batch2, &all)?;

    assert!(
        survivor_ops.metric("eddy_task_starts_total", &[("source", "standby")])? >= 1.0,
        "{} never took over a standby:\n{}",
        survivor.name(),
        survivor.log_tail(40)
    );
    assert_resumed_from_copies(&survivor_ops, &moved, &["standby"], "the standby")?;
    run.finish_exactly(std::slice::from_mut(&mut survivor), &all)?;
    Ok(())
}

#[test]
fn a_joining_instance_warms_up_every_stateful_task_before_it_takes_any() -> anyhow::Result<()> {
    let run = WordcountRun::new("warmup", 4)?;
    let mut a = run.start("a", &[])?;
    a.ops()?.wait_status("/ready", 200, WAIT)?;
    let batch1 = generate_lines(71, 20_000, 3_000);
    let batch2 = generate_lines(72, 2_000, 3_000);
    let words1: u64 = expected_counts(batch1.iter().map(String::as_str))
        .values()
        .sum();
    let all = expected_counts(batch1.iter().chain(&batch2).map(String::as_str));
    run.produce_lines(&batch1)?;
    run.kafka.tail(&run.output)?.wait_for(words1, WAIT)?;

    // b has no standbys: only its warm-up can give it copies of a's count tasks.
    let mut b = run.start("b", &[("EDDY__PROCESSING__WARMUP_BEFORE_JOIN", "true")])?;
    let b_ops = b.ops()?;
    b_ops.wait_status("/ready", 200, WAIT)?;
    // Every count task b took when it joined (the group may give it only split tasks) started
    // from its warm copy: none came before the warm-up finished.
    let counts: Vec<String> = b_ops
        .tasks()?
        .iter()
        .filter_map(|t| t["task"].as_str().map(str::to_owned))
        .filter(|t| t.starts_with("1_"))
        .collect();
    println!("count tasks b took when it joined: {counts:?}");
    assert_resumed_from_copies(&b_ops, &counts, &["standby"], "the warm-up")?;

    // Whatever b owns after a dies starts from the warm copies, kept on disk since.
    kill_and_wait_for_the_rest(&run, &mut a, &b, &batch2, &all)?;
    let every_count = ["1_0", "1_1", "1_2", "1_3"];
    assert_resumed_from_copies(&b_ops, &every_count, &["standby", "local"], "the warm-up")?;
    run.finish_exactly(std::slice::from_mut(&mut b), &all)?;
    Ok(())
}

#[test]
fn an_instance_warming_up_stops_on_sigterm() -> anyhow::Result<()> {
    let run = WordcountRun::new("warmup-stop", 2)?;
    let mut a = run.start("a", &[])?;
    a.ops()?.wait_status("/ready", 200, WAIT)?;
    let lines = generate_lines(81, 200, 100);
    let words: u64 = expected_counts(lines.iter().map(String::as_str))
        .values()
        .sum();
    run.produce_lines(&lines)?;
    run.kafka.tail(&run.output)?.wait_for(words, WAIT)?;
    a.terminate(WAIT)?;

    // Millions of changelog records: a copy takes far longer to read them than the test
    // takes to send SIGTERM once the warm-up has begun.
    let changelog = format!("{}-counts-changelog", run.application_id);
    run.kafka.producer()?.send_all(
        &changelog,
        (0..3_000_000u32).map(|i| {
            let key = format!("filler-{i}").into_bytes();
            (Some(key), 1i64.to_be_bytes().to_vec(), None)
        }),
    )?;

    let mut b = run.start(
        "b",
        &[
            ("EDDY__PROCESSING__WARMUP_BEFORE_JOIN", "true"),
            ("EDDY__PROCESSING__WARMUP_TIMEOUT_MS", "600000"),
        ],
    )?;
    let warming = eventually_every("b warming up", WAIT, Duration::from_millis(50), || {
        Ok(b.log_text().contains("warming up before joining the group"))
    });
    on_timeout(warming, || {
        anyhow::bail!("b never warmed up:\n{}", b.log_tail(30))
    })?;
    // SIGTERM while warming up: the instance stops cleanly without finishing the warm-up.
    b.terminate(Duration::from_secs(30))?;
    assert!(
        !b.log_text().contains("warm-up done"),
        "b finished its warm-up before stopping:\n{}",
        b.log_tail(20)
    );
    Ok(())
}
