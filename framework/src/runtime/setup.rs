//! Start-up steps that meet a cluster still starting or restarting: retried with back-off
//! until a deadline, and checked for settings that lose data.

use std::time::{Duration, Instant};

use super::RuntimeError;
use crate::kafka::{TopicAdmin, TopicSpec};

/// Runs `step` until it succeeds, retrying recoverable errors (a broker restarting, a
/// coordinator loading, a topic just created) with a back-off from 100 ms to 5 s until
/// `deadline` has passed; then, or at once for any other error, returns the error.
///
/// # Errors
/// The step's last error.
pub(crate) fn retrying<T>(
    deadline: Duration,
    what: &str,
    mut step: impl FnMut() -> Result<T, RuntimeError>,
) -> Result<T, RuntimeError> {
    let started = Instant::now();
    let mut backoff = Duration::from_millis(100);
    loop {
        match step() {
            Ok(value) => return Ok(value),
            Err(e) if e.is_recoverable() && started.elapsed() + backoff < deadline => {
                tracing::warn!(error = %e, retry_in = ?backoff, "{what}: retrying");
                std::thread::park_timeout(backoff); // back-off before the next attempt
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Warns about every internal topic with a single replica on a cluster of several brokers:
/// losing that broker loses the topic's data (state, records in flight).
pub(crate) fn warn_on_single_replicas(admin: &TopicAdmin, topics: &[TopicSpec]) {
    for spec in topics {
        match admin.replication(&spec.name) {
            Ok(Some((1, brokers))) if brokers > 1 => tracing::warn!(
                topic = spec.name,
                brokers,
                "internal topic has a single replica on a cluster of {brokers} brokers: losing one broker loses its data; set topics.replication_factor (and the broker's default.replication.factor)"
            ),
            Ok(_) => {}
            Err(e) => tracing::debug!(topic = spec.name, error = %e, "cannot check the replication"),
        }
    }
}
