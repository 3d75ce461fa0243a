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
/// A zero-timeout flush does not lift `linger.ms`: librdkafka raises its "flushing" flag for
/// the length of the call and wakes the broker threads, which find the flag already lowered,
/// so the records sent last sat out their linger (5 ms) before a commit could go on. Every
/// [`SEND_NOW_EVERY`] this holds the flag up for [`SEND_NOW`] instead.
///
/// # Errors
/// The records are not acknowledged within `timeout`, or the producer failed.
pub fn drain<C: ProducerContext>(
    producer: &BaseProducer<C>,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let deadline = Instant::now() + timeout;
    let mut sent_now: Option<Instant> = None;
    loop {
        // A zero-timeout flush asks the brokers to send without lingering and reports whether
        // anything is still in flight.
        match producer.flush(Duration::ZERO) {
            Ok(()) => return Ok(()),
            Err(KafkaError::Flush(code)) if code == RDKafkaErrorCode::OperationTimedOut => {
                if Instant::now() >= deadline {
                    return Err(KafkaError::Flush(code));
                }
                if sent_now.is_none_or(|at| at.elapsed() >= SEND_NOW_EVERY) {
                    send_now(producer);
                    sent_now = Some(Instant::now());
                }
                producer.poll(Duration::from_millis(1));
            }
            Err(e) => return Err(e),
        }
    }
}

/// How long [`send_now`] keeps linger lifted, in milliseconds: long enough for the broker
/// threads to wake and take every queued record.
const SEND_NOW: i32 = 1;
/// How often a drain lifts linger again (records retried after an error are queued anew).
const SEND_NOW_EVERY: Duration = Duration::from_millis(10);

/// Has the broker threads send every queued record now: librdkafka's flush with a timeout
/// keeps its "flushing" flag, which lifts `linger.ms`, raised while it waits. Delivery
/// reports are events here (rust-rdkafka's producer), which that flush does not serve, so it
/// returns after [`SEND_NOW`] ms at most and the caller serves them.
#[allow(unsafe_code)] // librdkafka's documented, thread-safe rd_kafka_flush
fn send_now<C: ProducerContext>(producer: &BaseProducer<C>) {
    let client = producer.client().native_ptr();
    // SAFETY: `client` is the live handle `producer` owns for at least this call.
    let _ = unsafe { rdkafka::bindings::rd_kafka_flush(client, SEND_NOW) };
}
