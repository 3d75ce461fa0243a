//! Output records the brokers refuse whatever the number of tries (larger than its topic's
//! max.message.bytes; for an output topic deleted while the app runs): the app stops with an
//! error naming the refused record, its size and limit, and the input record it came from,
//! instead of aborting and reprocessing it until the restart deadline. Nothing of the failed
//! transaction commits.

use std::sync::mpsc;
use std::time::Duration;

use eddy::config::ConfigLoader;
use eddy::dsl::StreamsBuilder;
use eddy::serde::StringSerde;
use eddy::App;
use eddy_testkit::{eventually, unique_name, Isolation, Kafka};

const LIMIT: &str = "2000";

#[test]
fn a_record_too_large_for_its_topic_stops_the_app_naming_it() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    let kafka = Kafka::shared()?;
    let app = unique_name("too-large");
    let input = unique_name("too-large-in");
    let output = unique_name("too-large-out");
    let state = tempfile::tempdir()?;
    kafka.create_topic(&input, 1)?;
    kafka.create_topic_with(&output, 1, &[("max.message.bytes", LIMIT)])?;
    let big = "x".repeat(5_000);
    kafka.produce(
        &input,
        ["small", big.as_str(), "after"]
            .iter()
            .map(|v| (Some(b"k".to_vec()), v.as_bytes().to_vec())),
    )?;
    let stopped = Passthrough::start(kafka, &app, &input, &output, state.path())?;
    let text = stopped.error_within(Duration::from_secs(90))?;
    for needle in [
        format!("`{output}`"),
        "5001 bytes".to_owned(),
        format!("max.message.bytes ({LIMIT})"),
        format!("{input} [0] offset 1"),
    ] {
        assert!(text.contains(&needle), "missing `{needle}` in: {text}");
    }
    // The transaction with the refused record never committed, nor did anything after it.
    let out = kafka.read_all(&output, Isolation::ReadCommitted)?;
    assert!(
        out.iter().all(|r| r.value_str() == "small"),
        "only records before the refused one may have committed: {:?}",
        out.iter()
            .map(eddy_testkit::ReadRecord::value_str)
            .collect::<Vec<_>>()
    );
    let committed = kafka.committed_offsets(&app, &input)?;
    assert!(
        committed[0].is_none_or(|c| c <= 1),
        "committed {committed:?} past the refused record at offset 1"
    );
    Ok(())
}

/// The output topic deleted under a running app: every retry would meet the same missing
/// topic, so the app stops well before its restart deadline (5 minutes by default), naming
/// the topic and the input record, and commits nothing past the record.
#[test]
fn an_output_topic_deleted_while_the_app_runs_stops_it_naming_the_topic() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt().with_env_filter("warn").try_init();
    let kafka = Kafka::shared()?;
    let app = unique_name("deleted-out");
    let input = unique_name("deleted-out-in");
    let output = unique_name("deleted-out-out");
    let state = tempfile::tempdir()?;
    kafka.create_topic(&input, 1)?;
    kafka.create_topic(&output, 1)?;
    kafka.produce(&input, [(Some(b"k".to_vec()), b"before".to_vec())])?;
    let stopped = Passthrough::start(kafka, &app, &input, &output, state.path())?;
    eventually("the first record's output", Duration::from_secs(60), || {
        Ok::<_, eddy_testkit::TestkitError>(
            !kafka
                .read_all(&output, Isolation::ReadCommitted)?
                .is_empty(),
        )
    })?;
    kafka.delete_topic(&output)?;
    kafka.produce(&input, [(Some(b"k".to_vec()), b"after".to_vec())])?;
    let text = stopped.error_within(Duration::from_secs(120))?;
    for needle in [
        format!("`{output}`"),
        "does not exist".to_owned(),
        format!("{input} [0] offset 1"),
    ] {
        assert!(text.contains(&needle), "missing `{needle}` in: {text}");
    }
    let committed = kafka.committed_offsets(&app, &input)?;
    assert_eq!(
        committed[0],
        Some(1),
        "the record for the deleted topic must stay uncommitted"
    );
    Ok(())
}

/// A running passthrough app (input to output, strings), and the way to learn how it stopped.
struct Passthrough {
    done: mpsc::Receiver<()>,
    waiter: std::thread::JoinHandle<Result<(), eddy::runtime::RuntimeError>>,
}

impl Passthrough {
    fn start(
        kafka: &Kafka,
        app: &str,
        input: &str,
        output: &str,
        state: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let builder = StreamsBuilder::new();
        builder
            .stream(input, StringSerde, StringSerde)
            .to(output, StringSerde, StringSerde);
        let config = ConfigLoader::new()
            .environment_from(Vec::<(String, String)>::new())
            .flag("application.id", app)
            .flag("kafka.bootstrap_servers", kafka.bootstrap_servers())
            .flag("state.dir", state.display().to_string())
            .flag("ops.address", "off")
            .load()?;
        let running = App::new(builder.build()?, config).start()?;
        let (done_tx, done) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let result = running.wait();
            let _ = done_tx.send(());
            result
        });
        Ok(Passthrough { done, waiter })
    }

    /// The error the app stopped with, failing when it still runs after `deadline` (an
    /// abort-and-reprocess loop) or stopped without one.
    fn error_within(self, deadline: Duration) -> anyhow::Result<String> {
        if self.done.recv_timeout(deadline).is_err() {
            anyhow::bail!(
                "the app still runs {deadline:?} after the record was refused (an abort-and-reprocess loop)"
            );
        }
        let err = self
            .waiter
            .join()
            .map_err(|_| anyhow::anyhow!("the waiting thread panicked"))?
            .err()
            .ok_or_else(|| anyhow::anyhow!("the app must stop with an error"))?;
        Ok(err.to_string())
    }
}
