//! Transaction calls with a deadline of their own: librdkafka's `send_offsets_to_transaction`
//! (and its other transaction calls) can wait without end for a coordinator reply that never
//! comes after a broker restart, whatever their timeout argument says. Each call runs on a
//! helper thread; when it overruns, the caller gives the producer up (a new one with the same
//! transactional id fences it, which ends the stuck call) instead of hanging with it.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::BaseProducer;

use super::delivery::DeliveryContext;

/// How much longer than librdkafka's own timeout a call may take before it counts as stuck.
const GRACE: Duration = Duration::from_secs(5);

/// The error a stuck call reports: its producer must be replaced.
pub(super) fn stuck() -> KafkaError {
    KafkaError::MessageProduction(RDKafkaErrorCode::Fenced)
}

/// Runs `call` on `producer` on a helper thread and waits for it up to `timeout` + a grace
/// period. `Err(None)` when it did not return in time (the helper keeps the producer alive
/// until it does).
pub(super) fn run<T: Send + 'static>(
    producer: &Arc<BaseProducer<DeliveryContext>>,
    timeout: Duration,
    call: impl FnOnce(&BaseProducer<DeliveryContext>) -> KafkaResult<T> + Send + 'static,
) -> Result<T, Option<KafkaError>> {
    let (tx, rx) = mpsc::channel();
    let producer = Arc::clone(producer);
    let spawned = std::thread::Builder::new()
        .name("eddy-txn-call".to_owned())
        .spawn(move || {
            let _ = tx.send(call(&producer));
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot spawn the transaction call's thread");
        return Err(Some(stuck()));
    }
    match rx.recv_timeout(timeout + GRACE) {
        Ok(result) => result.map_err(Some),
        Err(_) => Err(None),
    }
}
