//! Sends that no retry can get through, met by a real producer and broker: a partition the
//! topic does not have, a topic that does not exist. The producer's error stops the thread
//! (action `Fatal`) naming the refused record, instead of an abort and a reprocessing loop.

use eddy::kafka::{KafkaSettings, OutgoingRecord, OutputProducer, ProducerError};
use eddy::ErrorAction;
use eddy_testkit::{unique_name, Kafka};
use rdkafka::error::RDKafkaErrorCode;

fn record(topic: &str, partition: Option<i32>) -> OutgoingRecord<'_> {
    OutgoingRecord {
        topic,
        partition,
        key: Some(b"k"),
        value: Some(b"v"),
        timestamp: None,
        headers: &[],
    }
}

/// Asserts that `err` stops the thread and names a record for `topic` refused with `code`.
fn assert_refused_for_good(err: &ProducerError, topic: &str, code: RDKafkaErrorCode) {
    assert_eq!(err.action, ErrorAction::Fatal, "{err}");
    let rejected = err
        .rejected
        .as_ref()
        .unwrap_or_else(|| panic!("no refused record named: {err}"));
    assert_eq!(
        (rejected.topic.as_str(), rejected.code),
        (topic, code),
        "{err}"
    );
}

#[test]
fn a_send_to_a_partition_the_topic_lacks_is_refused_for_good() -> anyhow::Result<()> {
    let kafka = Kafka::shared()?;
    let topic = unique_name("refused-partition");
    kafka.create_topic(&topic, 1)?;
    let settings = KafkaSettings::new(kafka.bootstrap_servers());
    let mut producer = OutputProducer::new(&settings, &unique_name("refusals"))?;
    producer.begin()?;
    // Delivered first, so the producer knows the topic's partitions when it meets the next.
    producer.send(record(&topic, Some(0)))?;
    producer.flush()?;
    let err = producer
        .send(record(&topic, Some(5)))
        .err()
        .ok_or_else(|| anyhow::anyhow!("a send to partition 5 of a 1-partition topic passed"))?;
    assert_refused_for_good(&err, &topic, RDKafkaErrorCode::UnknownPartition);
    Ok(())
}

/// A send to a topic the producer knows to be missing fails at once with `UnknownTopic`.
/// (A record queued before the producer knew fails in its delivery report with the broker's
/// `UnknownTopicOrPartition`, which a topic whose metadata has not reached every broker yet
/// also gets: that commit fails as abortable, and the send after it is refused for good.)
#[test]
fn a_send_to_a_topic_known_to_be_missing_is_refused_for_good() -> anyhow::Result<()> {
    let kafka = Kafka::shared()?;
    let topic = unique_name("refused-topic");
    let mut settings = KafkaSettings::new(kafka.bootstrap_servers());
    // How long librdkafka waits for a topic to appear before it gives its records up.
    settings.client_properties.insert(
        "topic.metadata.propagation.max.ms".to_owned(),
        "500".to_owned(),
    );
    let mut producer = OutputProducer::new(&settings, &unique_name("refusals"))?;
    producer.begin()?;
    if producer.send(record(&topic, None)).is_ok() && producer.commit().is_ok() {
        anyhow::bail!("a record for a missing topic was committed");
    }
    producer.abort()?;
    producer.begin()?;
    let err = producer
        .send(record(&topic, None))
        .err()
        .ok_or_else(|| anyhow::anyhow!("a send to a missing topic passed"))?;
    assert_refused_for_good(&err, &topic, RDKafkaErrorCode::UnknownTopic);
    Ok(())
}
