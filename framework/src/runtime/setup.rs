//! Start-up steps that meet a cluster still starting or restarting: preparing the topics,
//! retried with back-off until a deadline, and checked for settings that lose data.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::RuntimeError;
use crate::backoff::Backoff;
use crate::config::{EddyConfig, RecordErrorHandler};
use crate::kafka::{TopicAdmin, TopicSpec};
use crate::shared::Plan;
use crate::topology::Topology;

/// Set-up steps retry after 100 ms, 200 ms, ... up to 5 s.
const SETUP_BACKOFF: Backoff =
    Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5));

/// Runs `step` until it succeeds, retrying recoverable errors (a broker restarting, a
/// coordinator loading, a topic just created) with a back-off from 100 ms to 5 s until
/// `deadline` has passed; then, or at once for any other error, returns the error. When
/// `stop` is set (SIGTERM while the cluster is away), no further attempt is made and the
/// wait ends at once.
///
/// # Errors
/// The step's last error, or [`RuntimeError::StoppedStarting`].
pub(crate) fn retrying<T>(
    deadline: Duration,
    what: &str,
    stop: &AtomicBool,
    mut step: impl FnMut() -> Result<T, RuntimeError>,
) -> Result<T, RuntimeError> {
    let mut attempts = SETUP_BACKOFF.start(deadline);
    loop {
        match step() {
            Ok(value) => return Ok(value),
            Err(e) if e.is_recoverable() => {
                tracing::warn!(error = %e, retry_in = ?attempts.next_wait(), "{what}: retrying");
                if !attempts.wait_unless(stop) {
                    if stop.load(Ordering::Relaxed) {
                        return Err(RuntimeError::StoppedStarting {
                            during: what.to_owned(),
                        });
                    }
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Plans the topology against the topics as they are, chooses the group protocol (see
/// [`super::group_protocol`]), creates the internal topics (with `topics.*` applied) and a missing
/// dead-letter topic.
pub(super) fn prepare_topics(
    topology: &Topology,
    config: &EddyConfig,
) -> Result<(Plan, crate::config::GroupProtocol), RuntimeError> {
    let admin = TopicAdmin::new(&config.kafka)?;
    let mut lookup_error = None;
    let plan = crate::shared::plan(topology, &config.application.id, |topic| {
        match admin.partitions(topic) {
            Ok(n) => n,
            Err(e) => {
                lookup_error.get_or_insert(e);
                None
            }
        }
    });
    if let Some(e) = lookup_error {
        return Err(e.into());
    }
    let mut plan = plan.map_err(RuntimeError::Plan)?;
    let copartitioned = plan.inputs.values().any(|topics| topics.len() > 1);
    let protocol = super::group_protocol::resolve(
        config.processing.group_protocol,
        &admin,
        super::group_protocol::Member {
            session_timeout: config.processing.session_timeout,
            static_membership: config.processing.static_membership,
        },
        copartitioned,
    )?;
    if protocol == crate::config::GroupProtocol::Classic {
        let joined: Vec<String> = plan
            .inputs
            .iter()
            .filter(|(_, topics)| topics.len() > 1)
            .map(|(sub, topics)| {
                format!(
                    "sub-topology {sub} reads {} together (a join or merge), which needs partition N of each on one member: set processing.group_protocol = consumer (the classic protocol's cooperative-sticky assignor does not keep them together)",
                    topics.join(" and ")
                )
            })
            .collect();
        if !joined.is_empty() {
            return Err(RuntimeError::Plan(joined));
        }
    }
    for spec in &mut plan.internal {
        spec.replication_factor = config.topics.replication_factor;
        if let Some(isr) = config.topics.min_insync_replicas {
            spec.configs
                .insert("min.insync.replicas".to_owned(), isr.to_string());
        }
    }
    admin.ensure(&plan.internal)?;
    warn_on_single_replicas(&admin, &plan.internal);
    // An existing dead-letter topic is used as it is; a missing one is created. Dead
    // letters are sent unpartitioned, so the plan needs no partition count for it.
    let dead_letter = [&config.errors.deserialization, &config.errors.processing]
        .into_iter()
        .find_map(|h| match h {
            RecordErrorHandler::DeadLetter(topic) => Some(topic.clone()),
            _ => None,
        });
    if let Some(topic) = dead_letter {
        if admin.partitions(&topic)?.is_none() {
            admin.ensure(&[TopicSpec::new(topic, 1)])?;
        }
    }
    Ok((plan, protocol))
}

/// Warns about every internal topic with a single replica on a cluster of several brokers:
/// losing that broker loses the topic's data (state, records in flight).
pub(crate) fn warn_on_single_replicas(admin: &TopicAdmin, topics: &[TopicSpec]) {
    for spec in topics {
        match admin.replication(&spec.name) {
            Ok(Some((replicas, brokers))) if single_replica_at_risk(replicas, brokers) => {
                tracing::warn!(
                    topic = spec.name,
                    brokers,
                    "internal topic has a single replica on a cluster of {brokers} brokers: losing one broker loses its data; set topics.replication_factor (and the broker's default.replication.factor)"
                )
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(topic = spec.name, error = %e, "cannot check the replication")
            }
        }
    }
}

/// True when a topic whose partitions have at least `replicas` replicas each, on a cluster of
/// `brokers` brokers, loses data with one broker: a single replica where more were possible.
/// On a single broker there is no better choice, so no warning.
fn single_replica_at_risk(replicas: usize, brokers: usize) -> bool {
    replicas == 1 && brokers > 1
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::{retrying, single_replica_at_risk};
    use crate::runtime::RuntimeError;

    #[test]
    fn a_stop_ends_the_retries_of_a_set_up_step() {
        let stop = AtomicBool::new(false);
        let mut calls = 0;
        let result = retrying(Duration::from_secs(600), "preparing", &stop, || {
            calls += 1;
            // SIGTERM while the brokers are away.
            stop.store(true, Ordering::Relaxed);
            if calls < 3 {
                Err(RuntimeError::Kafka {
                    what: "reading metadata".to_owned(),
                    source: rdkafka::error::KafkaError::MetadataFetch(
                        rdkafka::types::RDKafkaErrorCode::BrokerTransportFailure,
                    ),
                })
            } else {
                Ok(())
            }
        });
        assert!(
            matches!(&result, Err(RuntimeError::StoppedStarting { during }) if during == "preparing"),
            "{result:?}"
        );
        assert_eq!(calls, 1, "no attempt after the stop");
    }

    #[test]
    fn a_single_replica_is_warned_about_only_on_a_cluster_of_several_brokers() {
        assert!(single_replica_at_risk(1, 3), "one replica on three brokers");
        assert!(single_replica_at_risk(1, 2), "one replica on two brokers");
        assert!(
            !single_replica_at_risk(1, 1),
            "a single broker has no choice"
        );
        assert!(
            !single_replica_at_risk(2, 3),
            "two replicas survive one loss"
        );
        assert!(!single_replica_at_risk(3, 3), "three replicas");
    }
}
