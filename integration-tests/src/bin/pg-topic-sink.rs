//! A test app: consumes the input topic (key: text, value: a decimal number) into the
//! PostgreSQL table `PG_TABLE` at `PG_URL` (columns `k text`, `v bigint`) through the
//! exactly-once topic sink, until SIGTERM or SIGINT. Takes wordcount's flags (the output topic
//! and the state directory go unused).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::Parser;
use eddy::prelude::*;
use eddy_integration_tests::TestAppArgs;
use eddy_postgres::{Change, Table, TopicSink};

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = TestAppArgs::parse();
    let config = args.eddy.loader().load()?;
    let url = std::env::var("PG_URL").map_err(|_| anyhow::anyhow!("PG_URL names the database"))?;
    let table =
        std::env::var("PG_TABLE").map_err(|_| anyhow::anyhow!("PG_TABLE names the table"))?;
    let sink = TopicSink::new(
        &table,
        &url,
        &args.input_topic,
        &config.kafka.bootstrap_servers,
        Table::append(&table, &["k", "v"])?,
        StringSerde,
        StringSerde,
        |k: &String, v: &String| {
            let v: i64 = v.parse().ok()?;
            Some(Change::Row(vec![k.as_str().into(), v.into()]))
        },
    )?
    // A dead instance's partitions move after 6 s, not librdkafka's default 45 s.
    .kafka_setting("session.timeout.ms", "6000");
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = Arc::clone(&stop);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        runtime.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            if let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                on_signal.store(true, Ordering::Relaxed);
            }
        });
    });
    eprintln!("pg-topic-sink: consuming {} into {table}", args.input_topic);
    let report = sink.run(&stop)?;
    eprintln!("pg-topic-sink: {report:?}");
    Ok(())
}
