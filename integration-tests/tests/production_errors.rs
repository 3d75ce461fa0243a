//! An output record the brokers refuse whatever the number of tries (larger than its topic's
//! max.message.bytes): the app stops with an error naming the refused record, its size and
//! limit, and the input record it came from, instead of aborting and reprocessing it forever.
//! Nothing of the failed transaction commits.

use std::sync::mpsc;
use std::time::Duration;

use eddy::config::ConfigLoader;
use eddy::dsl::StreamsBuilder;
use eddy::serde::StringSerde;
use eddy::App;
use eddy_testkit::{unique_name, Isolation, Kafka};

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
    let builder = StreamsBuilder::new();
    builder
        .stream(&input, StringSerde, StringSerde)
        .to(&output, StringSerde, StringSerde);
    let config = ConfigLoader::new()
        .environment_from(Vec::<(String, String)>::new())
        .flag("application.id", &app)
        .flag("kafka.bootstrap_servers", kafka.bootstrap_servers())
        .flag("state.dir", state.path().display().to_string())
        .flag("ops.address", "off")
        .load()?;
    let running = App::new(builder.build()?, config).start()?;
    let (done_tx, done_rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let result = running.wait();
        let _ = done_tx.send(());
        result
    });
    if done_rx.recv_timeout(Duration::from_secs(90)).is_err() {
        anyhow::bail!(
            "the app still runs 90 s after the record was refused (an abort-and-reprocess loop)"
        );
    }
    let err = waiter
        .join()
        .map_err(|_| anyhow::anyhow!("the waiting thread panicked"))?
        .err()
        .ok_or_else(|| anyhow::anyhow!("the app must stop with an error"))?;
    let text = err.to_string();
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
