//! Reading a partition's watermarks, retrying what a leader move or a new topic makes
//! transient, and a partition's offset in a list the client returned.

use std::time::{Duration, Instant};

use rdkafka::client::{Client, ClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::TopicPartitionList;

use crate::backoff::Backoff;
use crate::ErrorAction;

/// The offset of `topic` [`partition`] in `list` (positions, committed offsets), when it is
/// a real offset rather than a marker such as "beginning" or "not known".
pub(crate) fn offset_in(list: &TopicPartitionList, topic: &str, partition: i32) -> Option<i64> {
    list.find_partition(topic, partition)
        .and_then(|e| e.offset().to_raw())
        .filter(|&o| o >= 0)
}

/// The low and high watermarks of `topic` [`partition`], as the consumer's isolation level sees
/// them (a `read_committed` consumer's high watermark is the last stable offset).
///
/// Retriable errors (a partition whose leader is moving or not yet elected, a topic that was
/// just created and is not yet known to the broker asked, a broker restarting) are retried with a short back-off until `timeout` has
/// passed; the last error is returned then.
///
/// # Errors
/// A non-retriable error at once, or the last retriable error once `timeout` has passed.
pub fn watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<(i64, i64), KafkaError> {
    client_watermarks(consumer.client(), topic, partition, timeout)
}

/// [`watermarks`] read through any client, as its `isolation.level` sees them (librdkafka's
/// default, also a producer's, is `read_committed`).
///
/// A broker answers one request per connection at a time, so a query through a consumer that
/// has read to the end waits behind its fetch, which the broker holds for up to the
/// consumer's `fetch.wait.max.ms`; a client that does not fetch answers at once.
///
/// # Errors
/// As [`watermarks`].
pub fn client_watermarks<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<(i64, i64), KafkaError> {
    let deadline = Instant::now() + timeout;
    let mut attempts = Backoff::fixed(Duration::from_millis(100)).start(timeout);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match client.fetch_watermarks(topic, partition, left.max(Duration::from_millis(100))) {
            Ok(ends) => return Ok(ends),
            Err(e) if retriable(&e) && attempts.wait() => {}
            Err(e) => return Err(e),
        }
    }
}

/// Transient for a watermark read: what [`super::classify`] retries, and an unknown partition,
/// which a topic created a moment ago is to brokers that have not seen its metadata yet.
fn retriable(err: &KafkaError) -> bool {
    super::classify(err) == ErrorAction::Retry
        || matches!(
            err.rdkafka_error_code(),
            Some(RDKafkaErrorCode::UnknownPartition | RDKafkaErrorCode::UnknownTopicOrPartition)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_partition_is_retried_but_an_authorization_failure_is_not() {
        assert!(retriable(&KafkaError::MetadataFetch(
            RDKafkaErrorCode::UnknownPartition
        )));
        assert!(retriable(&KafkaError::MetadataFetch(
            RDKafkaErrorCode::BrokerTransportFailure
        )));
        assert!(!retriable(&KafkaError::MetadataFetch(
            RDKafkaErrorCode::TopicAuthorizationFailed
        )));
    }
}
