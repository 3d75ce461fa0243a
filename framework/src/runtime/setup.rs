//! Start-up steps that meet a cluster still starting or restarting: retried with back-off
//! until a deadline, and checked for settings that lose data.

use std::time::Duration;

use super::RuntimeError;
use crate::backoff::Backoff;
use crate::kafka::{TopicAdmin, TopicSpec};

/// Set-up steps retry after 100 ms, 200 ms, ... up to 5 s.
const SETUP_BACKOFF: Backoff =
    Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5));

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
    let mut attempts = SETUP_BACKOFF.start(deadline);
    loop {
        match step() {
            Ok(value) => return Ok(value),
            Err(e) if e.is_recoverable() => {
                tracing::warn!(error = %e, retry_in = ?attempts.next_wait(), "{what}: retrying");
                if !attempts.wait() {
                    return Err(e);
                }
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
