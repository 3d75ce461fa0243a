//! The internal topics an app creates and relies on: repartition records are kept without a
//! time limit and purged once committed; `topics.*` settings reach the topics; an existing
//! changelog that is not compacted is refused before it can lose state.

use std::time::Duration;

use eddy::kafka::{KafkaSettings, TopicAdmin};
use eddy_integration_tests::{eventually, expected_counts, generate_lines, WordcountRun};
use eddy_testkit::Isolation;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;

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

/// `topics.min_insync_replicas` is set on every internal topic the app creates (changelog,
/// repartition, control): the broker reports it as the topic's own config, not its default.
#[test]
fn the_min_insync_replicas_setting_reaches_the_internal_topics() -> anyhow::Result<()> {
    let run = WordcountRun::new("min-isr", 1)?;
    // One broker: 1 is the only value that lets the app write; the broker's own default is
    // 1 too, so the test tells them apart by where the broker says the value comes from.
    let mut app = run.start(
        "a",
        &[
            ("EDDY__TOPICS__REPLICATION_FACTOR", "1"),
            ("EDDY__TOPICS__MIN_INSYNC_REPLICAS", "1"),
        ],
    )?;
    run.produce_lines(&["one two".to_owned()])?;
    run.kafka
        .tail(&run.output)?
        .wait_for(2, Duration::from_secs(120))
        .map_err(|e| anyhow::anyhow!("{e}\n{}", app.log_tail(10)))?;
    let id = &run.application_id;
    for topic in [
        format!("{id}-counts-changelog"),
        format!("{id}-counts-repartition"),
        format!("{id}-eddy-control"),
    ] {
        let (value, source) = topic_config(&run, &topic, "min.insync.replicas")?;
        assert_eq!(
            (value.as_deref(), source.as_str()),
            (Some("1"), "DynamicTopic"),
            "min.insync.replicas of `{topic}` is not the topic's own setting"
        );
    }
    app.terminate(Duration::from_secs(60))?;
    Ok(())
}

/// The value of `topic`'s config `key` and where the broker takes it from (`DynamicTopic`:
/// the topic's own setting; `StaticBroker`, `Default`: not set on the topic).
fn topic_config(
    run: &WordcountRun,
    topic: &str,
    key: &str,
) -> anyhow::Result<(Option<String>, String)> {
    let admin: AdminClient<DefaultClientContext> = run.kafka.config().create()?;
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let resource = ResourceSpecifier::Topic(topic);
    let results = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(admin.describe_configs([&resource], &options))?;
    for result in results {
        let described = result.map_err(|code| anyhow::anyhow!("describing `{topic}`: {code}"))?;
        if let Some(entry) = described.get(key) {
            return Ok((entry.value.clone(), format!("{:?}", entry.source)));
        }
    }
    anyhow::bail!("`{topic}` has no config `{key}`")
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
    // The count task reopened a local copy; `/ready` says where its state came from.
    let mut count_task = serde_json::Value::Null;
    let mut last_error = String::new();
    eventually(
        "the restarted instance reports its count task running",
        Duration::from_secs(60),
        || match app.ops().and_then(|ops| ops.tasks()) {
            Ok(tasks) => {
                let found = tasks.into_iter().find(|t| t["task"] == "1_0");
                let running = found.as_ref().is_some_and(|t| t["state"] == "running");
                count_task = found.unwrap_or_default();
                Ok(running)
            }
            Err(e) => {
                last_error = e.to_string();
                Ok(false)
            }
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}: {count_task} {last_error}\n{}", app.log_tail(15)))?;
    app.terminate(Duration::from_secs(60))?;
    let output = run.kafka.read_all(&run.output, Isolation::ReadCommitted)?;
    let last = output.last().map(|r| (r.key_str(), r.value_str()));
    assert_eq!(
        last,
        Some(("alpha".to_owned(), "1".to_owned())),
        "the state follows the recreated changelog; log:\n{}",
        app.log_tail(15)
    );
    // Wiped: the task starts from nothing and replays the new changelog from its start.
    assert_eq!(
        count_task["state_source"], "empty",
        "the untrusted local copy was kept: {count_task}"
    );
    let replays = count_task["replays"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !replays.is_empty() && replays.iter().all(|r| r["from"] == 0),
        "the replay does not start at the changelog's start: {count_task}"
    );
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
