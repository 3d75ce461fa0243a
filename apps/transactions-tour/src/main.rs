//! A tour of Eddy's transactional produce against a running Kafka: one committed and one
//! aborted transaction, then what read_committed and read_uncommitted consumers see.
//!
//! Run it with `cargo run -p transactions-tour -- 127.0.0.1:9092`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use eddy::kafka::{KafkaSettings, OutputProducer};
use eddy::kafka::{OutgoingRecord, TopicAdmin, TopicSpec};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

fn main() -> anyhow::Result<()> {
    let bootstrap = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9092".to_owned());
    let settings = KafkaSettings::new(&bootstrap);
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let topic = format!("eddy-tour-{stamp}");
    TopicAdmin::new(&settings)?.ensure(&[TopicSpec::new(&topic, 1)])?;
    println!("created topic {topic} on {bootstrap}");

    let mut producer = OutputProducer::new(&settings, &format!("eddy-tour-{stamp}"))?;
    let send = |producer: &mut OutputProducer, lines: &[&str]| -> anyhow::Result<()> {
        for line in lines {
            producer.send(OutgoingRecord {
                topic: &topic,
                partition: None,
                key: None,
                value: Some(line.as_bytes()),
                timestamp: None,
                headers: &[],
            })?;
        }
        Ok(())
    };
    producer.begin()?;
    send(
        &mut producer,
        &["the quick brown fox", "jumps over", "the lazy dog"],
    )?;
    producer.commit()?;
    println!("committed a transaction of 3 records");
    producer.begin()?;
    send(
        &mut producer,
        &["this line is aborted", "and so is this one"],
    )?;
    producer.flush()?; // the records reach the log; the abort marker follows them
    producer.abort()?;
    println!("aborted a transaction of 2 records after they reached the log");

    for isolation in ["read_committed", "read_uncommitted"] {
        let values = read_all(&bootstrap, &topic, isolation)?;
        println!("{isolation:>16} sees {} records: {values:?}", values.len());
    }
    let committed = read_all(&bootstrap, &topic, "read_committed")?;
    let everything = read_all(&bootstrap, &topic, "read_uncommitted")?;
    if committed.len() != 3 || everything.len() != 5 {
        bail!(
            "expected 3 committed of 5 written records, read {} and {}",
            committed.len(),
            everything.len()
        );
    }
    println!("read_committed consumers see exactly the committed records");
    Ok(())
}

fn read_all(bootstrap: &str, topic: &str, isolation: &str) -> anyhow::Result<Vec<String>> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "eddy-tour-reader")
        .set("isolation.level", isolation)
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut values = Vec::new();
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(msg)) => {
                values.push(String::from_utf8_lossy(msg.payload().unwrap_or_default()).into_owned())
            }
            Some(Err(KafkaError::PartitionEOF(_))) => return Ok(values),
            Some(Err(e)) => return Err(e).context(format!("reading {topic}")),
            None => {}
        }
    }
    bail!("did not reach the end of {topic} within 30 s")
}
