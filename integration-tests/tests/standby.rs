//! Standby replicas against the real broker: with `processing.standby_replicas = 1` every
//! stateful task has a caught-up copy on the other instance, so when its owner is killed the
//! new owner replays only the changelog records the copy had not yet seen.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use eddy_integration_tests::{expected_counts, generate_lines, AppProcess, WordcountRun};

const WAIT: Duration = Duration::from_secs(180);

/// `(task, from, to)` of every "restore plan" line in `log`.
fn restore_plans(log: &str) -> Vec<(String, i64, i64)> {
    log.lines()
        .filter(|l| l.contains("restore plan"))
        .filter_map(|l| {
            let field = |name: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{name}=")))
                    .map(|v| v.trim_matches('"').to_owned())
            };
            Some((
                field("task")?,
                field("from")?.parse().ok()?,
                field("to")?.parse().ok()?,
            ))
        })
        .collect()
}

/// Checks that each of `tasks` was last restored from a copy holding at least 90% of its
/// changelog (`source` made the copy), printing what each replayed.
fn assert_resumed_from_copies(
    log: &str,
    tasks: &[impl AsRef<str>],
    source: &str,
) -> anyhow::Result<()> {
    for task in tasks {
        let task = task.as_ref();
        let (_, from, to) = restore_plans(log)
            .into_iter()
            .rfind(|(t, ..)| t == task)
            .ok_or_else(|| anyhow::anyhow!("no restore of {task} in the log"))?;
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
    let mut b = run.start("b", &env)?;
    let b_ops = b.ops()?;
    b_ops.wait_status("/ready", 200, WAIT)?;
    let mut a = run.start("a", &env)?;
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
    let start = Instant::now();
    let a_tasks: Vec<String> = loop {
        let (_, a_ready) = a_ops.get_json("/ready")?;
        let (_, b_ready) = b_ops.get_json("/ready")?;
        let standbys: Vec<serde_json::Value> = [&a_ready, &b_ready]
            .iter()
            .flat_map(|r| r["standbys"].as_array().cloned().unwrap_or_default())
            .collect();
        let a_tasks: Vec<String> = a_ready["threads"]
            .as_object()
            .into_iter()
            .flat_map(|t| t.values())
            .flat_map(|t| t["tasks"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t["task"].as_str().map(str::to_owned))
            .filter(|t| t.starts_with("1_"))
            .collect();
        if standbys.len() == 4 && standbys.iter().all(|s| s["lag"] == 0) && !a_tasks.is_empty() {
            break a_tasks;
        }
        if start.elapsed() > WAIT {
            anyhow::bail!("standbys never caught up: a {a_ready}\nb {b_ready}");
        }
        std::thread::park_timeout(Duration::from_millis(250)); // poll interval of a deadline wait
    };

    kill_and_wait_for_the_rest(&run, &mut a, &b, &batch2, &all)?;

    let log = b.log_text();
    assert!(
        log.contains("standby handed over to the active task"),
        "b never took over a standby:\n{}",
        b.log_tail(40)
    );
    assert_resumed_from_copies(&log, &a_tasks, "the standby")?;
    run.finish_exactly(std::slice::from_mut(&mut b), &all)?;
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
    b.ops()?.wait_status("/ready", 200, WAIT)?;
    let log = b.log_text();
    let warmed = log
        .find("warm-up done")
        .ok_or_else(|| anyhow::anyhow!("b never finished its warm-up:\n{}", b.log_tail(40)))?;
    let first_task = log.find("task assigned").unwrap_or(usize::MAX);
    assert!(warmed < first_task, "b took tasks before it was warm");

    // Whatever b owns after a dies starts from the warm copies.
    kill_and_wait_for_the_rest(&run, &mut a, &b, &batch2, &all)?;
    let log = b.log_text();
    assert_resumed_from_copies(&log, &["1_0", "1_1", "1_2", "1_3"], "the warm-up")?;
    run.finish_exactly(std::slice::from_mut(&mut b), &all)?;
    Ok(())
}
