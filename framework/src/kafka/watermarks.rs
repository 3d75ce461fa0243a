//! Reading a partition's watermarks, retrying what a leader move or a new topic makes transient.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;

use crate::ErrorAction;

/// The low and high watermarks of `topic` [`partition`], as the consumer's isolation level sees
/// them (a `read_committed` consumer's high watermark is the last stable offset).
///
/// Retriable errors (a partition whose leader is moving or not yet elected on a topic that was
/// just created, a broker restarting) are retried with a short back-off until `timeout` has
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
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match consumer.fetch_watermarks(topic, partition, left.max(Duration::from_millis(100))) {
            Ok(ends) => return Ok(ends),
            Err(e) if super::classify(&e) == ErrorAction::Retry && Instant::now() < deadline => {
                std::thread::park_timeout(Duration::from_millis(100)); // back-off before asking again
            }
            Err(e) => return Err(e),
        }
    }
}
