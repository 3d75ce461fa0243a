//! The benchmark's physical reference: a plain librdkafka consume-transform-produce loop with
//! no framework, doing the passthrough workload (drop blank lines, upper-case the rest).
//!
//! `bench-raw exactly_once|at_least_once <bootstrap> <group> <input> <output>`: exactly-once
//! commits a transaction (outputs and input offsets) every 100 ms; at-least-once flushes the
//! outputs and commits the offsets every 100 ms. Runs until SIGTERM or SIGKILL.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use eddy_integration_tests::{eventually_every, on_timeout};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};

const COMMIT_INTERVAL: Duration = Duration::from_millis(100);

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [guarantee, bootstrap, group, input, output] = args.as_slice() else {
        bail!("usage: bench-raw exactly_once|at_least_once <bootstrap> <group> <input> <output>");
    };
    let exactly_once = guarantee == "exactly_once";
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "isolation.level",
            if exactly_once {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .create()
        .context("creating the consumer")?;
    let mut producer_config = ClientConfig::new();
    producer_config
        .set("bootstrap.servers", bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "5");
    if exactly_once {
        producer_config.set("transactional.id", format!("{group}-raw"));
    }
    let producer: ThreadedProducer<DefaultProducerContext> =
        producer_config.create().context("creating the producer")?;
    if exactly_once {
        producer.init_transactions(Duration::from_secs(30))?;
        producer.begin_transaction()?;
    }
    consumer.subscribe(&[input.as_str()])?;
    let mut pending = TopicPartitionList::new();
    let mut last_commit = Instant::now();
    loop {
        if let Some(message) = consumer.poll(Duration::from_millis(10)) {
            let message = message?;
            if let Some(line) = message.payload_view::<str>().transpose()? {
                if !line.trim().is_empty() {
                    let upper = line.to_uppercase();
                    let mut record = BaseRecord::<(), str>::to(output).payload(&upper);
                    loop {
                        match producer.send(record) {
                            Ok(()) => break,
                            Err((e, back))
                                if e.rdkafka_error_code()
                                    == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) =>
                            {
                                record = back;
                                // The queue drains on the producer's own thread.
                                eddy_testkit::pace(Duration::from_millis(1));
                            }
                            Err((e, _)) => return Err(e.into()),
                        }
                    }
                }
            }
            pending.add_partition_offset(
                message.topic(),
                message.partition(),
                Offset::Offset(message.offset() + 1),
            )?;
        }
        if last_commit.elapsed() >= COMMIT_INTERVAL && pending.count() > 0 {
            drain(&producer)?;
            if exactly_once {
                let metadata = consumer
                    .group_metadata()
                    .context("the consumer has no group metadata")?;
                producer.send_offsets_to_transaction(
                    &pending,
                    &metadata,
                    Duration::from_secs(30),
                )?;
                producer.commit_transaction(Duration::from_secs(30))?;
                producer.begin_transaction()?;
            } else {
                consumer.commit(&pending, CommitMode::Sync)?;
            }
            pending = TopicPartitionList::new();
            last_commit = Instant::now();
        }
    }
}

/// Waits until every record sent is acknowledged, in 1 ms steps: rust-rdkafka's `flush`
/// (which `commit_transaction` calls first) waits in 100 ms slices that run to their end, which
/// would add 100 ms to every commit. The producer's own thread serves the delivery reports.
fn drain(producer: &ThreadedProducer<DefaultProducerContext>) -> anyhow::Result<()> {
    // Delivery reports arrive on the producer's own thread.
    let (deadline, step) = (Duration::from_secs(30), Duration::from_millis(1));
    let waited = eventually_every("every record acknowledged", deadline, step, || {
        Ok(producer.in_flight_count() == 0)
    });
    on_timeout(waited, || {
        bail!(
            "{} records unacknowledged after 30 s",
            producer.in_flight_count()
        )
    })
}
