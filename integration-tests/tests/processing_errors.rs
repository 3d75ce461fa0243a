//! A record whose processing panics after `count` updated its store: the transaction is
//! aborted, so neither the count nor the output of that record ever commits. The
//! processing-error handler then stops the app (`fail`), or processes the transaction's records
//! again without that one (`skip`, `dead_letter`). Run in-process against the real broker.

use std::time::Duration;

use eddy::config::ConfigLoader;
use eddy::dsl::StreamsBuilder;
use eddy::serde::StringSerde;
use eddy::App;
use eddy_testkit::{unique_name, Isolation, Kafka};

/// The key whose processing panics.
const POISON: &str = "poison";

struct Run {
    kafka: &'static Kafka,
    app: String,
    input: String,
    output: String,
    state: tempfile::TempDir,
}

impl Run {
    fn new(prefix: &str) -> anyhow::Result<Self> {
        let kafka = Kafka::shared()?;
        let run = Run {
            kafka,
            app: unique_name(prefix),
            input: unique_name(&format!("{prefix}-in")),
            output: unique_name(&format!("{prefix}-out")),
            state: tempfile::tempdir()?,
        };
        kafka.create_topic(&run.input, 1)?;
        kafka.create_topic(&run.output, 1)?;
        let keys = ["a", "b", POISON, "c", "a"];
        kafka.produce(
            &run.input,
            keys.iter()
                .map(|k| (Some(k.as_bytes().to_vec()), b"x".to_vec())),
        )?;
        Ok(run)
    }

    /// Counts per key; the count of [`POISON`] panics in the step after the store update.
    fn app(&self, settings: &[(&str, &str)]) -> anyhow::Result<App> {
        let builder = StreamsBuilder::new();
        builder
            .stream(&self.input, StringSerde, StringSerde)
            .group_by_key(StringSerde, StringSerde)
            .count("counts")
            .to_stream()
            .map(|key: String, n: Option<i64>| {
                assert!(key != POISON, "boom: cannot handle {key}");
                (key, n.map_or_else(String::new, |n| n.to_string()))
            })
            .to(&self.output, StringSerde, StringSerde);
        let mut loader = ConfigLoader::new()
            .environment_from(Vec::<(String, String)>::new())
            .flag("application.id", &self.app)
            .flag("kafka.bootstrap_servers", self.kafka.bootstrap_servers())
            .flag("state.dir", self.state.path().display().to_string())
            .flag("ops.address", "off")
            .flag("processing.session_timeout_ms", "6000");
        for (key, value) in settings {
            loader = loader.flag(key, *value);
        }
        Ok(App::new(builder.build()?, loader.load()?))
    }

    fn changelog_keys(&self) -> anyhow::Result<Vec<String>> {
        let changelog = format!("{}-counts-changelog", self.app);
        Ok(self
            .kafka
            .read_all(&changelog, Isolation::ReadCommitted)?
            .iter()
            .map(eddy_testkit::ReadRecord::key_str)
            .collect())
    }

    /// Runs the app until the four good records are counted, then stops it.
    fn run_to_the_end(
        &self,
        settings: &[(&str, &str)],
    ) -> anyhow::Result<eddy::runtime::MetricsSnapshot> {
        let running = self.app(settings)?.start()?;
        let seen = self
            .kafka
            .tail(&self.output)?
            .wait_for(4, Duration::from_secs(120));
        running.shutdown();
        let metrics = running.metrics();
        running.wait()?;
        seen?;
        Ok(metrics)
    }

    fn output(&self) -> anyhow::Result<Vec<(String, String)>> {
        Ok(self
            .kafka
            .read_all(&self.output, Isolation::ReadCommitted)?
            .iter()
            .map(|r| (r.key_str(), r.value_str()))
            .collect())
    }
}

fn good_counts() -> Vec<(String, String)> {
    [("a", "1"), ("b", "1"), ("c", "1"), ("a", "2")]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn a_panic_after_the_store_changed_aborts_and_fail_stops_without_committing() -> anyhow::Result<()>
{
    let run = Run::new("panic-fail")?;
    let running = run.app(&[])?.start()?;
    let err = running
        .wait()
        .err()
        .ok_or_else(|| anyhow::anyhow!("the app must stop on the panic"))?;
    let text = err.to_string();
    assert!(
        text.contains("boom: cannot handle poison") && text.contains("offset 2"),
        "the error names the panic and the record: {text}"
    );
    // The panicking record's count update never committed, however often the app restarts.
    assert!(
        !run.changelog_keys()?.contains(&POISON.to_owned()),
        "the poison record's count reached the committed changelog"
    );
    let committed = run.kafka.committed_offsets(&run.app, &run.input)?;
    assert!(
        committed[0].is_none_or(|c| c <= 2),
        "committed {committed:?} past the poison record at offset 2"
    );
    let again = run.app(&[])?.start()?;
    assert!(
        again.wait().is_err(),
        "the record panics again after a restart"
    );
    assert!(!run.changelog_keys()?.contains(&POISON.to_owned()));
    Ok(())
}

#[test]
fn skip_processes_the_transaction_again_without_the_panicking_record() -> anyhow::Result<()> {
    let run = Run::new("panic-skip")?;
    let metrics = run.run_to_the_end(&[("errors.processing", "skip")])?;
    assert_eq!(
        run.output()?,
        good_counts(),
        "every count once, none for the poison key"
    );
    assert!(!run.changelog_keys()?.contains(&POISON.to_owned()));
    assert_eq!(metrics.skipped, 1);
    assert_eq!(metrics.processing_errors, 1);
    Ok(())
}

#[test]
fn dead_letter_keeps_the_panicking_record_with_the_panic_message() -> anyhow::Result<()> {
    let run = Run::new("panic-dlq")?;
    let dlq = format!("{}-dead-letters", run.app);
    run.run_to_the_end(&[
        ("errors.processing", "dead_letter"),
        ("errors.dead_letter_topic", &dlq),
    ])?;
    assert_eq!(run.output()?, good_counts());
    let letters = run.kafka.read_all(&dlq, Isolation::ReadCommitted)?;
    assert_eq!(letters.len(), 1, "exactly the poison record: {letters:?}");
    assert_eq!(letters[0].key_str(), POISON);
    let error = letters[0]
        .headers
        .iter()
        .find(|(k, _)| k == "eddy.error")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    assert!(
        error.contains("boom: cannot handle poison"),
        "eddy.error: {error}"
    );
    Ok(())
}
