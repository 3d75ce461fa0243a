//! The internal topics an app creates and relies on: repartition records are kept without a
//! time limit and purged once committed; `topics.*` settings reach the topics; an existing
//! changelog that is not compacted is refused before it can lose state.

use std::time::Duration;

use eddy::kafka::{KafkaSettings, TopicAdmin};
use eddy_integration_tests::{eventually, expected_counts, generate_lines, WordcountRun};
use eddy_testkit::Isolation;

#[test]
fn repartition_records_never_expire_and_are_purged_once_committed() -> anyhow::Result<()> {
    let run = WordcountRun::new("purge", 2)?;
    let lines = generate_lines(5, 2_000, 40);
    let expected = expected_counts(lines.iter().map(String::as_str));
    let total: u64 = expected.values().sum();
    let mut apps = [run.start(
        "a",
        &[("EDDY__PROCESSING__REPARTITION_PURGE_INTERVAL_MS", "200")],
    )?];
    run.produce_lines(&lines)?;
    run.kafka
        .tail(&run.output)?
        .wait_for(total, Duration::from_secs(120))?;
    let repartition = format!("{}-counts-repartition", run.application_id);
    let admin = TopicAdmin::new(&KafkaSettings::new(run.kafka.bootstrap_servers()))?;
    assert_eq!(
        admin.topic_config(&repartition, "retention.ms")?.as_deref(),
        Some("-1"),
        "repartition records must not expire before they are read"
    );
    // Input keeps arriving so commits (and with them purges) go on.
    let written = run
        .kafka
        .end_offsets(&repartition, Isolation::ReadUncommitted)?;
    let mut starts = Vec::new();
    eventually(
        "the repartition topic is purged",
        Duration::from_secs(60),
        || {
            run.produce_lines(&lines[..10])?;
            starts = low_watermarks(&run, &repartition)?;
            Ok(starts.iter().zip(&written).all(|(s, w)| *s > 0 && s >= w))
        },
    )
    .map_err(|e| {
        anyhow::anyhow!(
            "{e}: log starts {starts:?}, written {written:?}\n{}",
            apps[0].log_tail(20)
        )
    })?;
    for app in &mut apps {
        app.terminate(Duration::from_secs(60))?;
    }
    Ok(())
}

fn low_watermarks(run: &WordcountRun, topic: &str) -> anyhow::Result<Vec<i64>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = run.kafka.config().create()?;
    (0..run.kafka.partitions(topic)?)
        .map(|p| {
            let (low, _) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10))?;
            Ok(low)
        })
        .collect()
}

#[test]
fn a_changelog_that_is_not_compacted_is_refused_naming_it() -> anyhow::Result<()> {
    let run = WordcountRun::new("not-compacted", 1)?;
    let changelog = format!("{}-counts-changelog", run.application_id);
    run.kafka
        .create_topic_with(&changelog, 1, &[("cleanup.policy", "delete")])?;
    let mut app = run.start("a", &[])?;
    let status = app.wait_exit(Duration::from_secs(60))?;
    assert!(!status.success());
    let log = app.log_text();
    assert!(
        log.contains(&format!("topic `{changelog}` has cleanup.policy=delete")),
        "{}",
        app.log_tail(10)
    );
    Ok(())
}

#[test]
fn the_replication_setting_reaches_the_internal_topics() -> anyhow::Result<()> {
    // One broker cannot hold two replicas: the app must refuse to start, naming why.
    let run = WordcountRun::new("replication", 1)?;
    let mut app = run.start("a", &[("EDDY__TOPICS__REPLICATION_FACTOR", "2")])?;
    let status = app.wait_exit(Duration::from_secs(120))?;
    assert!(!status.success());
    let log = app.log_text();
    assert!(
        log.contains("InvalidReplicationFactor") || log.contains("replication factor"),
        "{}",
        app.log_tail(10)
    );
    Ok(())
}

/// A local copy whose changelog position lies beyond a recreated (empty) changelog holds state
/// the changelog no longer describes: it is wiped and restored, not replayed forward.
#[test]
fn a_local_copy_ahead_of_a_recreated_changelog_is_wiped_and_restored() -> anyhow::Result<()> {
    let run = WordcountRun::new("recreated", 1)?;
    let mut app = run.start("a", &[])?;
    run.produce_lines(&vec!["alpha beta".to_owned(); 5])?;
    run.kafka
        .tail(&run.output)?
        .wait_for(10, Duration::from_secs(120))?;
    app.terminate(Duration::from_secs(60))?;

    let changelog = format!("{}-counts-changelog", run.application_id);
    run.kafka.delete_topic(&changelog)?;
    // Deletion finishes on the brokers after the topic leaves the metadata.
    let mut refusal = None;
    eventually(
        "the changelog is created again",
        Duration::from_secs(60),
        || match run
            .kafka
            .create_topic_with(&changelog, 1, &[("cleanup.policy", "compact")])
        {
            Ok(()) => Ok(true),
            Err(e) => {
                refusal = Some(e.to_string());
                Ok(false)
            }
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}: {}", refusal.unwrap_or_default()))?;
    app.restart()?;
    run.produce_lines(&["alpha".to_owned()])?;
    run.kafka
        .tail(&run.output)?
        .wait_for(11, Duration::from_secs(120))?;
    app.terminate(Duration::from_secs(60))?;
    let output = run.kafka.read_all(&run.output, Isolation::ReadCommitted)?;
    let last = output.last().map(|r| (r.key_str(), r.value_str()));
    assert_eq!(
        last,
        Some(("alpha".to_owned(), "1".to_owned())),
        "the state follows the recreated changelog; log:\n{}",
        app.log_tail(15)
    );
    assert!(app.log_text().contains("the local copy cannot be trusted"));
    Ok(())
}

/// The state of a task this instance no longer owns is deleted after `state.cleanup_delay_ms`;
/// the state of the tasks it runs stays.
#[test]
fn state_of_tasks_no_longer_owned_is_removed_after_the_delay() -> anyhow::Result<()> {
    let run = WordcountRun::new("cleanup", 1)?;
    let mut app = run.start("a", &[("EDDY__STATE__CLEANUP_DELAY_MS", "1000")])?;
    run.produce_lines(&["one two".to_owned()])?;
    run.kafka
        .tail(&run.output)?
        .wait_for(2, Duration::from_secs(120))?;
    let tasks = run
        .dir
        .path()
        .join("a")
        .join(&run.application_id)
        .join("tasks");
    // What a task that moved away for good leaves behind.
    let gone = tasks.join("7_3");
    std::fs::create_dir_all(&gone)?;
    std::fs::write(gone.join("CURRENT"), b"MANIFEST-000001\n")?;
    eventually(
        "the unowned task's directory is removed",
        Duration::from_secs(60),
        || Ok(!gone.exists()),
    )
    .map_err(|e| anyhow::anyhow!("{e}: {gone:?}\n{}", app.log_tail(10)))?;
    assert!(
        tasks.join("1_0").join("CURRENT").exists(),
        "the running task's state stays"
    );
    app.terminate(Duration::from_secs(60))?;
    Ok(())
}
