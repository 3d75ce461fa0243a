//! A stream thread: one consumer and one producer driving its tasks until shutdown.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::fault::Fault;
use super::rebalance::RebalanceHandler;
use super::restarts::{Restart, RestartPolicy};
use super::shared_state::Shared;
use super::task_manager::{Halt, TaskManager};
use super::RuntimeError;
use crate::backoff::Backoff;
use crate::config::{GroupProtocol, Guarantee};
use crate::kafka::{KafkaError, OutputProducer};

/// Runs stream thread `index` until `shutdown` is set or an error stops it.
///
/// A generation (one consumer, producer and set of tasks) that ends with a recoverable error
/// (a broker restarting, a coordinator moving, an aborted or fenced transaction) is replaced by
/// a new one from the last commit, after a back-off that doubles from 100 ms to 10 s while the
/// start-overs make no progress. When they make none for `processing.restart_deadline_ms`, the
/// last error stops the thread.
pub(crate) fn run(
    shared: Arc<Shared>,
    index: usize,
    shutdown: Arc<AtomicBool>,
) -> Result<(), RuntimeError> {
    let fault = Fault::from_env();
    let name = format!("{}-{index}", shared.instance.instance_id());
    let _span = tracing::info_span!("stream_thread", thread = %name).entered();
    let mut policy = RestartPolicy::new(shared.config.processing.restart_deadline);
    let mut fencings = Fencings::default();
    loop {
        let started = Instant::now();
        let (ended, committed, fenced) = run_generation(&shared, &name, fault, &shutdown);
        if fenced && fencings.fenced_again(Instant::now()) {
            if twin_in_group(&shared, &name) {
                let app = &shared.config.application.id;
                return Err(RuntimeError::DuplicateInstance {
                    instance_id: shared.instance.instance_id().to_owned(),
                    transactional_id: format!("{app}-{name}"),
                });
            }
            tracing::warn!(
                "fenced again and again, but no other member uses this thread's id; going on"
            );
            fencings = Fencings::default();
        }
        let failure = match ended {
            Halt::ShutDown => return Ok(()),
            Halt::StartOver(reason) => Ok(reason),
            Halt::Failed(e) if e.is_recoverable() && !shutdown.load(Ordering::Relaxed) => Err(e),
            Halt::Failed(e) => return Err(e),
        };
        shared.metrics.add_restart();
        match policy.next(started, Instant::now(), committed) {
            Restart::Now => {
                let reason = failure.unwrap_or_else(|e| e.to_string());
                tracing::info!(reason, "starting over with a new consumer and producer");
            }
            Restart::After(pause) => {
                let reason = failure.unwrap_or_else(|e| e.to_string());
                tracing::warn!(reason, pause = ?pause, "starting over with a new consumer and producer after a pause");
                if crate::backoff::pause_unless(&shutdown, pause) {
                    return Ok(());
                }
            }
            Restart::GiveUp(after) => {
                tracing::error!(stalled_for = ?after, "giving up: the thread made no progress");
                return Err(match failure {
                    Err(e) => e,
                    Ok(reason) => RuntimeError::Stalled { reason, after },
                });
            }
        }
    }
}

/// The longest heartbeat interval of a stream thread's consumer (classic group protocol).
const HEARTBEAT_MAX_MS: u128 = 250;

fn consumer_config(config: &crate::config::EddyConfig, name: &str) -> ClientConfig {
    let session = config.processing.session_timeout.as_millis();
    let session_timeout = session.to_string();
    // A member learns of a rebalance from a heartbeat answer. In a cooperative rebalance the
    // members that gave partitions up rejoin at once, but the new owner, which got nothing in
    // the first round, waits for its next heartbeat to join the second: at a quarter of the
    // session timeout that was 1.5 s of the rescale pause. Heartbeats are cheap.
    let heartbeat_interval = (session / 4).clamp(100, HEARTBEAT_MAX_MS).to_string();
    let isolation = match config.processing.guarantee {
        Guarantee::ExactlyOnce => "read_committed",
        Guarantee::AtLeastOnce => "read_uncommitted",
    };
    let mut settings = vec![
        ("group.id", config.application.id.as_str()),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        ("auto.offset.reset", "earliest"),
        ("isolation.level", isolation),
        // Partition ends for the lag metric arrive with the statistics.
        ("statistics.interval.ms", "1000"),
        // A partition that starts (a task restored, a rebalance) joins the fetch only when
        // the fetch in flight returns: with librdkafka's 500 ms long poll that was most of
        // the time from a restored task to its first record after kill -9.
        ("fetch.wait.max.ms", "50"),
    ];
    match config.processing.group_protocol {
        // `Auto` is resolved at start; left unresolved, it means the classic protocol.
        GroupProtocol::Classic | GroupProtocol::Auto => settings.extend([
            ("partition.assignment.strategy", "cooperative-sticky"),
            ("session.timeout.ms", session_timeout.as_str()),
            ("heartbeat.interval.ms", heartbeat_interval.as_str()),
        ]),
        // The broker assigns (sticky range: partition N of co-partitioned topics together)
        // and owns the session and heartbeat timing.
        GroupProtocol::Consumer => {
            settings.extend([
                ("group.protocol", "consumer"),
                ("group.remote.assignor", "range"),
            ]);
        }
    }
    // Records fetched ahead of processing are most of an instance's memory under backlog:
    // bounded by the budget's share, else by a default that keeps throughput; the app's own
    // `kafka.properties.queued.max.messages.kbytes` wins over both.
    let queue_kib = match config.memory.fetch_queue_bytes {
        Some(queues) => {
            crate::config::budget::queue_kib_per_consumer(queues, config.processing.threads)
        }
        None => crate::config::budget::DEFAULT_QUEUE_KIB,
    }
    .to_string();
    settings.push(("queued.max.messages.kbytes", queue_kib.as_str()));
    let mut client = config.kafka.consumer_config_with(name, &settings);
    if config.processing.static_membership {
        // `name` holds the instance id and thread index: stable across restarts.
        client.set(
            "group.instance.id",
            format!("{}-{name}", config.application.id),
        );
    }
    client
}

/// True when the group shows, within a few seconds, a member with this thread's client id
/// while this thread is out of the group (between generations; it left cleanly): another
/// process runs with this instance id. (Repeated fencing alone could also be the coordinator
/// aborting transactions while brokers restart.)
fn twin_in_group(shared: &Shared, name: &str) -> bool {
    let app = &shared.config.application.id;
    let client: BaseConsumer = match shared
        .config
        .kafka
        .client_config(&format!("{name}-twin-check"))
        .create()
    {
        Ok(client) => client,
        Err(e) => {
            tracing::warn!(error = %e, "cannot create a client to check for a twin");
            return false;
        }
    };
    // Samples half a second apart for about 5 s.
    let mut samples =
        Backoff::fixed(Duration::from_millis(500)).start(Duration::from_millis(4_600));
    loop {
        match crate::kafka::describe_group(&client, app, Duration::from_secs(5)) {
            Ok(view) => {
                if view.threads().any(|t| t == name) {
                    return true;
                }
            }
            Err(e) => tracing::debug!(error = %e, "describing the group"),
        }
        if !samples.wait() {
            return false;
        }
    }
}

/// Recent times another producer registered this thread's transactional id.
#[derive(Debug, Default)]
struct Fencings(std::collections::VecDeque<Instant>);

impl Fencings {
    /// How many fencings within [`Fencings::WINDOW`] mean that two processes share the
    /// instance id: each start of one fences the other, endlessly. A restarted instance
    /// fences its dead predecessor, and a frozen one is fenced once when its transaction
    /// times out; neither is fenced again and again.
    const LIMIT: usize = 3;
    const WINDOW: Duration = Duration::from_secs(120);

    /// Notes a fencing at `now`; true when it makes too many.
    fn fenced_again(&mut self, now: Instant) -> bool {
        self.0.push_back(now);
        while self
            .0
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > Self::WINDOW)
        {
            self.0.pop_front();
        }
        self.0.len() >= Self::LIMIT
    }
}

/// Runs one generation; returns how it ended, whether it committed a transaction and whether
/// another producer fenced its transactional id.
fn run_generation(
    shared: &Arc<Shared>,
    name: &str,
    fault: Fault,
    shutdown: &AtomicBool,
) -> (Halt, bool, bool) {
    let consumer = match start_generation(shared, name, fault) {
        Ok(consumer) => consumer,
        Err(e) => return (Halt::Failed(e), false, false),
    };
    // A panic that escapes the record handlers (a bug, or user code outside them) must not
    // unwind past this point: dropping the consumer runs the revoke callback, which would
    // commit the open transaction with the half-processed record's effects.
    let ended = match std::panic::catch_unwind(AssertUnwindSafe(|| drive(&consumer, shutdown))) {
        Ok(ended) => ended,
        Err(panic) => Halt::Failed(RuntimeError::Panicked {
            message: crate::task::panic_message(panic.as_ref()),
        }),
    };
    let (committed, fenced) = {
        let mut manager = consumer.context().manager();
        if matches!(ended, Halt::Failed(_)) {
            manager.abandon();
        }
        (manager.committed_any(), manager.producer_fenced())
    };
    // Leaving the group: the revoke callback this triggers finds nothing left to commit.
    consumer.unsubscribe();
    drop(consumer);
    (ended, committed, fenced)
}

/// Creates the generation's producer (registering its transactional id), task manager and
/// consumer, and subscribes.
fn start_generation(
    shared: &Arc<Shared>,
    name: &str,
    fault: Fault,
) -> Result<BaseConsumer<RebalanceHandler>, RuntimeError> {
    let config = &shared.config;
    let app = &config.application.id;
    let started = Instant::now();
    let producer = match config.processing.guarantee {
        // One transactional id per instance and thread: a restarted instance re-registers
        // it, which fences its previous incarnation and aborts its open transaction at once.
        Guarantee::ExactlyOnce => OutputProducer::new(&config.kafka, &format!("{app}-{name}")),
        Guarantee::AtLeastOnce => {
            OutputProducer::at_least_once(&config.kafka, &format!("{app}-{name}"))
        }
    }
    .map_err(RuntimeError::Producer)?;
    tracing::debug!(thread = name, took = ?started.elapsed(), "producer ready");
    let manager = TaskManager::new(Arc::clone(shared), name.to_owned(), producer, fault)?;
    tracing::debug!(thread = name, took = ?started.elapsed(), "task manager ready");
    let consumer: BaseConsumer<RebalanceHandler> = consumer_config(&shared.config, name)
        .create_with_context(RebalanceHandler::new(
            manager,
            config.processing.guarantee == Guarantee::ExactlyOnce,
            Arc::clone(&shared.metrics),
            name,
        ))
        .map_err(|source| RuntimeError::Kafka {
            what: "creating the consumer".to_owned(),
            source,
        })?;
    let topics: Vec<&str> = shared
        .plan
        .subscriptions
        .iter()
        .map(String::as_str)
        .collect();
    consumer
        .subscribe(&topics)
        .map_err(|source| RuntimeError::Kafka {
            what: format!("subscribing to {topics:?}"),
            source,
        })?;
    // While librdkafka joins the group: reading the control topic from its beginning (a new
    // client connecting and fetching) took about half a second, on the way of every first
    // assignment when the assignment did it.
    consumer.context().manager().read_timeline();
    tracing::debug!(thread = name, took = ?started.elapsed(), "timeline read");
    Ok(consumer)
}

/// Runs the loop of one generation until a step ends it; returns why.
fn drive(consumer: &BaseConsumer<RebalanceHandler>, shutdown: &AtomicBool) -> Halt {
    match drive_steps(consumer, shutdown) {
        Ok(never) => match never {},
        Err(halt) => halt,
    }
}

/// poll → process → restore → savepoint → punctuate → commit, each step returning whether
/// it ended the generation ([`TaskManager::step`]).
fn drive_steps(
    consumer: &BaseConsumer<RebalanceHandler>,
    shutdown: &AtomicBool,
) -> Result<std::convert::Infallible, Halt> {
    loop {
        if shutdown.load(Ordering::Relaxed) {
            consumer
                .context()
                .manager()
                .shutdown(consumer)
                .map_err(Halt::Failed)?;
            return Err(Halt::ShutDown);
        }
        let timeout = consumer.context().manager().poll_timeout();
        let mut polled = consumer.poll(Duration::ZERO);
        if polled.is_none() && !timeout.is_zero() && consumer.context().manager().idle() {
            polled = consumer.poll(timeout);
        }

        let mut manager = consumer.context().manager();
        // What the rebalance callbacks run inside the poll left.
        manager.halted()?;
        manager.polled(polled.is_some());
        match polled {
            Some(Ok(msg)) => manager.step(|m| m.process(&msg))?,
            Some(Err(e @ KafkaError::MessageConsumptionFatal(_))) => {
                return Err(Halt::Failed(RuntimeError::Kafka {
                    what: "consuming".to_owned(),
                    source: e,
                }))
            }
            // Other consumer errors are reports; librdkafka recovers from them itself.
            Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
            None => {}
        }
        manager.step(|m| m.recreate_rewound(consumer))?;
        manager.step(|m| m.process_buffered(consumer))?;
        manager.step(|m| m.restore_step(consumer))?;
        manager.apply_seeks(consumer);
        manager.step(|m| m.control_step(consumer))?;
        manager.step(|m| m.bounded_step(consumer))?;
        manager.step(TaskManager::punctuate)?;
        manager.publish_status(consumer);
        if manager.commit_due() {
            manager.step(|m| m.commit(consumer))?;
        }
        manager.step(|m| m.resolve_external_if_due(consumer))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue_kib(vars: &[(&str, &str)]) -> Option<String> {
        let config = crate::config::ConfigLoader::new()
            .environment_from(vars.iter().copied())
            .flag("application.id", "queues")
            .flag("kafka.bootstrap_servers", "127.0.0.1:9092")
            .load()
            .unwrap();
        consumer_config(&config, "queues-0")
            .get("queued.max.messages.kbytes")
            .map(str::to_owned)
    }

    #[test]
    fn the_consumer_fetches_partitions_soon_and_bounds_its_queue_unless_told_otherwise() {
        assert_eq!(queue_kib(&[]).as_deref(), Some("2048"));
        let config = crate::config::ConfigLoader::new()
            .environment_from(Vec::<(String, String)>::new())
            .flag("application.id", "queues")
            .flag("kafka.bootstrap_servers", "127.0.0.1:9092")
            .load()
            .unwrap();
        assert_eq!(
            consumer_config(&config, "queues-0").get("fetch.wait.max.ms"),
            Some("50")
        );
        // 400 MiB: a fifth for the queues, a fifth of that in payload, over two threads.
        let budget = [
            ("EDDY__MEMORY__BUDGET_MB", "400"),
            ("EDDY__PROCESSING__THREADS", "2"),
        ];
        assert_eq!(queue_kib(&budget).as_deref(), Some("8192"));
        let own = [
            ("EDDY__MEMORY__BUDGET_MB", "400"),
            (
                "EDDY__KAFKA__PROPERTIES__QUEUED_MAX_MESSAGES_KBYTES",
                "65536",
            ),
        ];
        assert_eq!(queue_kib(&own).as_deref(), Some("65536"));
    }

    #[test]
    fn repeated_fencing_within_the_window_means_a_duplicate() {
        let t0 = Instant::now();
        let mut once_in_a_while = Fencings::default();
        for minutes in [0, 3, 6, 9] {
            assert!(!once_in_a_while.fenced_again(t0 + Duration::from_secs(60 * minutes)));
        }
        let mut mutual = Fencings::default();
        assert!(!mutual.fenced_again(t0));
        assert!(!mutual.fenced_again(t0 + Duration::from_secs(5)));
        assert!(mutual.fenced_again(t0 + Duration::from_secs(10)));
    }
}
