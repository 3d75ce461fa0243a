//! Transaction calls with a deadline of their own: librdkafka's `send_offsets_to_transaction`
//! (and its other transaction calls) can wait without end for a coordinator reply that never
//! comes after a broker restart, whatever their timeout argument says. Each call runs on a
//! helper thread; when it overruns, the caller gives the producer up (a new one with the same
//! transactional id fences it, which ends the stuck call) instead of hanging with it.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    start(producer, timeout, call).map_err(Some)?.wait()
}

/// A transaction call running on its helper thread, started by [`start`].
pub(super) struct Pending<T> {
    result: mpsc::Receiver<KafkaResult<T>>,
    /// When the call counts as stuck: its start + librdkafka's timeout + [`GRACE`].
    deadline: Instant,
}

/// Starts `call` on `producer` on a helper thread and returns at once, so the caller can
/// work (serve delivery reports) while it runs.
///
/// # Errors
/// The helper thread cannot be spawned; the error is [`stuck`]'s, so the producer is
/// replaced.
pub(super) fn start<T: Send + 'static>(
    producer: &Arc<BaseProducer<DeliveryContext>>,
    timeout: Duration,
    call: impl FnOnce(&BaseProducer<DeliveryContext>) -> KafkaResult<T> + Send + 'static,
) -> Result<Pending<T>, KafkaError> {
    let (tx, rx) = mpsc::channel();
    let producer = Arc::clone(producer);
    let deadline = Instant::now() + timeout + GRACE;
    std::thread::Builder::new()
        .name("eddy-txn-call".to_owned())
        .spawn(move || {
            let _ = tx.send(call(&producer));
        })
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot spawn the transaction call's thread");
            stuck()
        })?;
    Ok(Pending {
        result: rx,
        deadline,
    })
}

impl<T> Pending<T> {
    /// Waits for the call's result until its deadline; `Err(None)` when it did not return
    /// in time.
    pub(super) fn wait(self) -> Result<T, Option<KafkaError>> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.result.recv_timeout(left) {
            Ok(result) => result.map_err(Some),
            Err(_) => Err(None),
        }
    }
}
