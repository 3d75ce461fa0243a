//! Waiting for a producer's records to be acknowledged without rust-rdkafka's 100 ms slices.

use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, Producer, ProducerContext};

/// Sends what lingers at once and serves delivery reports until nothing is in flight, failing
/// after `timeout`.
///
/// rust-rdkafka's own `flush` (which its `commit_transaction` also calls first) waits in
/// slices of 100 ms that always run to their end, so every flush or commit would last at least
/// 100 ms however fast the brokers acknowledge; this waits in 1 ms slices instead.
///
/// # Errors
/// The records are not acknowledged within `timeout`, or the producer failed.
pub fn drain<C: ProducerContext>(
    producer: &BaseProducer<C>,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let deadline = Instant::now() + timeout;
    loop {
        // A zero-timeout flush asks the brokers to send without lingering and reports whether
        // anything is still in flight.
        match producer.flush(Duration::ZERO) {
            Ok(()) => return Ok(()),
            Err(KafkaError::Flush(code)) if code == RDKafkaErrorCode::OperationTimedOut => {
                if Instant::now() >= deadline {
                    return Err(KafkaError::Flush(code));
                }
                producer.poll(Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
    }
}
