//! The app's control topic: savepoint coordination, savepoint-restore records and instance
//! addresses, exchanged between the `eddy` tool and every instance with no extra service.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::SnapshotError;
use crate::kafka::KafkaSettings;

/// The control topic of app `application_id` (one partition, compacted).
pub fn control_topic(application_id: &str) -> String {
    format!("{application_id}-eddy-control")
}

/// One message on the control topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ControlMessage {
    /// Coordinator: every stream thread commits and pauses its external inputs.
    SavepointBegin {
        /// Savepoint id.
        id: String,
        /// Root of the snapshot store to write to.
        target: String,
        /// Threads give up and resume after this (milliseconds since the epoch).
        deadline_ms: i64,
    },
    /// Thread: external inputs paused at a commit boundary.
    SavepointPaused {
        /// Savepoint id.
        id: String,
        /// The thread (its consumer's client id).
        thread: String,
        /// Tasks the thread owns.
        tasks: Vec<String>,
        /// Every task of the app.
        all_tasks: Vec<String>,
        /// Depth of the deepest sub-topology (0 when no repartition topic exists).
        levels: u32,
        /// Fingerprint of the thread's topology.
        topology: String,
    },
    /// Coordinator: tasks of sub-topologies at `level` read their repartition inputs to the
    /// end and commit.
    SavepointDrain {
        /// Savepoint id.
        id: String,
        /// Sub-topology depth.
        level: u32,
    },
    /// Thread: its tasks at `level` are drained.
    SavepointDrained {
        /// Savepoint id.
        id: String,
        /// The thread.
        thread: String,
        /// Sub-topology depth.
        level: u32,
    },
    /// Coordinator: every thread snapshots its tasks.
    SavepointSnapshot {
        /// Savepoint id.
        id: String,
    },
    /// Thread: its tasks' parts are written.
    SavepointSnapshotted {
        /// Savepoint id.
        id: String,
        /// The thread.
        thread: String,
        /// Tasks written.
        tasks: Vec<String>,
    },
    /// Thread: it cannot take part (a rebalance, a restoring task, an error).
    SavepointFailed {
        /// Savepoint id.
        id: String,
        /// The thread.
        thread: String,
        /// Why.
        reason: String,
    },
    /// Coordinator: the savepoint ended; threads resume their inputs.
    SavepointEnd {
        /// Savepoint id.
        id: String,
        /// True when the manifest was written.
        completed: bool,
    },
    /// An instance announces where its ops server answers (state queries are forwarded there).
    Instance {
        /// The instance id.
        instance: String,
        /// Its ops server's `host:port`.
        ops_address: String,
        /// When it started (milliseconds since the epoch).
        started_ms: i64,
    },
    /// An instance starting with `snapshot.from_savepoint` claims the right to apply it; the
    /// first live claim on the (single-partition) topic wins, the others wait for its
    /// `Restored` record.
    RestoreClaim {
        /// Savepoint id.
        savepoint: String,
        /// The claiming instance.
        instance: String,
        /// When it claimed (milliseconds since the epoch); stale claims are ignored.
        claimed_ms: i64,
    },
    /// A savepoint was applied to this app: tasks without state of this epoch load it.
    Restored {
        /// Savepoint id.
        savepoint: String,
        /// Savepoint directory.
        path: String,
        /// The state timeline that starts here.
        epoch: String,
        /// Per task, per store: the changelog offset replay continues from.
        positions: BTreeMap<String, BTreeMap<String, i64>>,
    },
    /// An instance starting a bounded run proposes where its inputs end; the first proposal
    /// after the last finished run is the run every instance follows.
    BoundedRun {
        /// The run's id.
        run: String,
        /// Per source topic, per partition: the offset the run reads up to (exclusive).
        ends: BTreeMap<String, Vec<i64>>,
        /// When it was proposed (milliseconds since the epoch).
        started_ms: i64,
    },
    /// A task of a bounded run read its inputs to their ends, closed its windows and
    /// committed.
    BoundedTaskDone {
        /// The run's id.
        run: String,
        /// The task.
        task: String,
    },
}

/// An id written into paths and keys: ASCII letters, digits, `.`, `_`, `-`, `@`.
fn plain_id(what: &str, id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!("{what} `{id}` is not a plain id"))
    }
}

/// A `host:port` other instances send HTTP requests to.
fn host_port(address: &str) -> Result<(), String> {
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| format!("ops address `{address}` has no port"))?;
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    if host_ok && port.parse::<u16>().is_ok() {
        Ok(())
    } else {
        Err(format!("ops address `{address}` is not a host:port"))
    }
}

impl ControlMessage {
    /// Checks what the message names before anyone acts on it: anyone allowed to write the
    /// control topic could otherwise point savepoint writes at any directory or forwarded
    /// queries at any address.
    ///
    /// # Errors
    /// What is wrong, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            ControlMessage::SavepointBegin { id, target, .. } => {
                plain_id("savepoint id", id)?;
                super::StoreLocation::parse(target)
                    .map_err(|e| e.to_string())?
                    .check_shared()
                    .map_err(|why| format!("savepoint store {why}"))
            }
            ControlMessage::SavepointPaused { id, thread, .. }
            | ControlMessage::SavepointDrained { id, thread, .. }
            | ControlMessage::SavepointSnapshotted { id, thread, .. }
            | ControlMessage::SavepointFailed { id, thread, .. } => {
                plain_id("savepoint id", id)?;
                plain_id("thread", thread)
            }
            ControlMessage::SavepointDrain { id, .. }
            | ControlMessage::SavepointSnapshot { id }
            | ControlMessage::SavepointEnd { id, .. } => plain_id("savepoint id", id),
            ControlMessage::Instance {
                instance,
                ops_address,
                ..
            } => {
                plain_id("instance", instance)?;
                host_port(ops_address)
            }
            ControlMessage::RestoreClaim {
                savepoint,
                instance,
                ..
            } => {
                plain_id("savepoint id", savepoint)?;
                plain_id("instance", instance)
            }
            ControlMessage::Restored {
                savepoint,
                path,
                epoch,
                ..
            } => {
                plain_id("savepoint id", savepoint)?;
                plain_id("epoch", epoch)?;
                super::SavepointLocation::parse(path)
                    .map_err(|e| e.to_string())?
                    .store
                    .check_shared()
                    .map_err(|why| format!("savepoint {why}"))
            }
            ControlMessage::BoundedRun { run, .. } => plain_id("bounded run", run),
            ControlMessage::BoundedTaskDone { run, task } => {
                plain_id("bounded run", run)?;
                plain_id("task", task)
            }
        }
    }

    /// The compaction key: the last restore record, and each thread's last word on each
    /// savepoint, survive compaction.
    fn key(&self) -> String {
        match self {
            ControlMessage::Restored { .. } => "restored".to_owned(),
            ControlMessage::Instance { instance, .. } => format!("instance/{instance}"),
            ControlMessage::RestoreClaim {
                savepoint,
                instance,
                ..
            } => format!("restore-claim/{savepoint}/{instance}"),
            ControlMessage::BoundedRun { run, .. } => format!("bounded/{run}"),
            ControlMessage::BoundedTaskDone { run, task } => format!("bounded/{run}/{task}"),
            ControlMessage::SavepointBegin { id, .. }
            | ControlMessage::SavepointDrain { id, .. }
            | ControlMessage::SavepointSnapshot { id }
            | ControlMessage::SavepointEnd { id, .. } => format!("savepoint/{id}/coordinator"),
            ControlMessage::SavepointPaused { id, thread, .. }
            | ControlMessage::SavepointDrained { id, thread, .. }
            | ControlMessage::SavepointSnapshotted { id, thread, .. }
            | ControlMessage::SavepointFailed { id, thread, .. } => {
                format!("savepoint/{id}/{thread}")
            }
        }
    }
}

/// Reads and writes the control topic.
pub struct ControlChannel {
    topic: String,
    /// The offset after the last message read (the start before the first).
    next: std::sync::atomic::AtomicI64,
    /// Its delivery reports are served by `drainer` after each send.
    producer: std::sync::Arc<BaseProducer>,
    drainer: crate::kafka::Drainer<rdkafka::producer::DefaultProducerContext>,
    /// Shared only with the thread that closes it when the channel is dropped.
    consumer: std::sync::Arc<BaseConsumer>,
}

impl Drop for ControlChannel {
    fn drop(&mut self) {
        // Closing a consumer waits for librdkafka's group handler to terminate, which can
        // take long (or hang) while the group coordinator is away; the control consumer
        // only reads, so it closes on a thread of its own and never holds up its owner.
        let consumer = std::sync::Arc::clone(&self.consumer);
        let spawned = std::thread::Builder::new()
            .name("eddy-close".to_owned())
            .spawn(move || {
                // Until the owner let go (it holds its clone for at most one poll).
                crate::backoff::poll_until(Duration::from_millis(1), Duration::MAX, || {
                    std::sync::Arc::strong_count(&consumer) == 1
                });
                drop(consumer);
            });
        if let Err(e) = spawned {
            tracing::debug!(error = %e, "closing the control consumer in place");
        }
    }
}

impl std::fmt::Debug for ControlChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlChannel")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

fn kafka(what: &str) -> impl FnOnce(rdkafka::error::KafkaError) -> SnapshotError + '_ {
    move |source| SnapshotError::Kafka {
        what: what.to_owned(),
        source,
    }
}

/// The control topic's low and high watermarks, retrying transient errors until `timeout`.
///
/// Read through the channel's producer: asked through its consumer once that has read to
/// the end, the query would wait behind the consumer's own fetch, which the broker holds
/// while there is nothing new (up to `fetch.wait.max.ms`, 500 ms by default). That wait was
/// most of the time a task took to move between instances, since every assignment reads the
/// topic's end.
fn watermarks(
    producer: &BaseProducer,
    topic: &str,
    timeout: Duration,
) -> Result<(i64, i64), SnapshotError> {
    crate::kafka::client_watermarks(producer.client(), topic, 0, timeout)
        .map_err(kafka("reading the end of the control topic"))
}

impl ControlChannel {
    /// Opens the control topic of `application_id`, reading from its beginning or its end.
    ///
    /// # Errors
    /// The Kafka clients cannot be created.
    pub fn open(
        settings: &KafkaSettings,
        application_id: &str,
        client_id: &str,
        from_beginning: bool,
    ) -> Result<Self, SnapshotError> {
        let topic = control_topic(application_id);
        let producer = settings
            .client_config_with(
                &format!("{client_id}-control"),
                &[("enable.idempotence", "true"), ("linger.ms", "0")],
            )
            .create()
            .map_err(kafka("creating the control producer"))?;
        let producer = std::sync::Arc::new(producer);
        let drainer = crate::kafka::Drainer::new(&producer)
            .map_err(kafka("creating the control producer"))?;
        let mut config = settings.client_config(&format!("{client_id}-control"));
        // Never joined or committed to; assignment needs one.
        config
            .set("group.id", format!("{client_id}-control"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
        let consumer: BaseConsumer = config
            .create()
            .map_err(kafka("creating the control consumer"))?;
        let start = if from_beginning {
            Offset::Beginning
        } else {
            // The current end, resolved now: "end" resolved lazily by the first fetch could
            // skip messages written in between.
            let (_, end) = watermarks(&producer, &topic, Duration::from_secs(30))?;
            Offset::Offset(end)
        };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, start)
            .map_err(kafka("building the control assignment"))?;
        consumer
            .assign(&tpl)
            .map_err(kafka("assigning the control topic"))?;
        Ok(ControlChannel {
            next: std::sync::atomic::AtomicI64::new(match start {
                Offset::Offset(o) => o,
                _ => 0,
            }),
            topic,
            producer,
            drainer,
            consumer: std::sync::Arc::new(consumer),
        })
    }

    /// Sends `message` and waits until Kafka acknowledged it.
    ///
    /// # Errors
    /// The message could not be delivered within `timeout`.
    pub fn send(&self, message: &ControlMessage, timeout: Duration) -> Result<(), SnapshotError> {
        let payload = serde_json::to_vec(message)
            .map_err(|e| SnapshotError::undecodable("a control message", e))?;
        let key = message.key();
        self.producer
            .send(
                BaseRecord::to(&self.topic)
                    .partition(0)
                    .key(&key)
                    .payload(&payload),
            )
            .map_err(|(source, _)| SnapshotError::Kafka {
                what: format!("sending to `{}`", self.topic),
                source,
            })?;
        self.drainer
            .drain(timeout)
            .map_err(kafka("flushing the control producer"))
    }

    /// The next message, waiting up to `timeout`. Messages that do not decode (written by a
    /// newer version) are logged and skipped; so are the consumer's reports of lost broker
    /// connections, which the client recovers from by itself.
    ///
    /// # Errors
    /// The consumer failed.
    pub fn poll(&self, timeout: Duration) -> Result<Option<ControlMessage>, SnapshotError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(result) = self.consumer.poll(left) else {
                return Ok(None);
            };
            let msg = match result {
                Ok(msg) => msg,
                Err(e) if crate::kafka::is_report(&e) => {
                    tracing::debug!(topic = self.topic, error = %e, "control topic reader report");
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                    continue;
                }
                Err(e) => return Err(kafka("reading the control topic")(e)),
            };
            self.next
                .fetch_max(msg.offset() + 1, std::sync::atomic::Ordering::Relaxed);
            match msg.payload().map(serde_json::from_slice::<ControlMessage>) {
                Some(Ok(message)) => match message.validate() {
                    Ok(()) => return Ok(Some(message)),
                    Err(why) => tracing::warn!(
                        topic = self.topic,
                        offset = msg.offset(),
                        error = why,
                        "ignoring a control message that names something it may not"
                    ),
                },
                other => tracing::warn!(
                    topic = self.topic,
                    offset = msg.offset(),
                    error = ?other.and_then(Result::err).map(|e| e.to_string()),
                    "ignoring a control message this version cannot read"
                ),
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    /// Every message up to the topic's current end.
    ///
    /// # Errors
    /// The end cannot be read or the consumer failed.
    pub fn read_to_end(&self, timeout: Duration) -> Result<Vec<ControlMessage>, SnapshotError> {
        let deadline = Instant::now() + timeout;
        let (low, end) = watermarks(&self.producer, &self.topic, timeout)?;
        let mut out = Vec::new();
        if end <= low {
            return Ok(out);
        }
        loop {
            // The consumer's position is unknown until it consumed something; what was read
            // (or where reading started) is known.
            let position = self
                .consumer
                .position()
                .map_err(kafka("reading the control position"))?
                .find_partition(&self.topic, 0)
                .and_then(|e| e.offset().to_raw())
                .unwrap_or(-1)
                .max(self.next.load(std::sync::atomic::Ordering::Relaxed));
            if position >= end {
                return Ok(out);
            }
            if Instant::now() >= deadline {
                return Err(SnapshotError::Timeout(format!(
                    "reading `{}` to offset {end} (at {position})",
                    self.topic
                )));
            }
            if let Some(message) = self.poll(Duration::from_millis(200))? {
                out.push(message);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_naming_paths_or_addresses_they_may_not_are_refused() {
        let begin = |target: &str| ControlMessage::SavepointBegin {
            id: "sp-1".to_owned(),
            target: target.to_owned(),
            deadline_ms: 0,
        };
        assert!(begin("/data/snapshots").validate().is_ok());
        assert!(begin("relative/dir").validate().is_err());
        assert!(begin("/data/../etc").validate().is_err());
        assert!(begin("s3://snaps/prod").validate().is_ok());
        assert!(begin("s3://UPPER").validate().is_err());
        let instance = |address: &str| ControlMessage::Instance {
            instance: "abc123".to_owned(),
            ops_address: address.to_owned(),
            started_ms: 0,
        };
        assert!(instance("10.0.0.7:9464").validate().is_ok());
        assert!(instance("app-1.svc.cluster.local:9464").validate().is_ok());
        assert!(instance("[::1]:9464").validate().is_ok());
        assert!(instance("evil.example/path:80").validate().is_err());
        assert!(instance("user@host:80").validate().is_err());
        assert!(instance("host").validate().is_err());
        let restored = ControlMessage::Restored {
            savepoint: "../../x".to_owned(),
            path: "/data/sp".to_owned(),
            epoch: "sp-1@1700000000000".to_owned(),
            positions: BTreeMap::new(),
        };
        assert!(restored.validate().is_err());
    }

    /// A reader that has read to the end has its next fetch held at the broker until new
    /// records come or `fetch.wait.max.ms` passes, and the broker answers one request per
    /// connection at a time. Reading the end through that consumer waited the fetch out; with
    /// the wait set longer than the reads' timeout, every read failed.
    #[test]
    fn reading_to_the_end_does_not_wait_behind_the_readers_own_fetch(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let kafka = eddy_testkit::Kafka::shared()?;
        let app = eddy_testkit::unique_name("control-end");
        kafka.create_topic(&control_topic(&app), 1)?;
        let mut settings = KafkaSettings::new(kafka.bootstrap_servers());
        settings
            .client_properties
            .insert("fetch.wait.max.ms".to_owned(), "60000".to_owned());
        let writer = ControlChannel::open(&settings, &app, "writer", false)?;
        let reader = ControlChannel::open(&settings, &app, "reader", true)?;
        let message = |n: i64| ControlMessage::Instance {
            instance: format!("instance{n}"),
            ops_address: "127.0.0.1:9464".to_owned(),
            started_ms: n,
        };
        writer.send(&message(1), Duration::from_secs(30))?;
        assert_eq!(
            reader.read_to_end(Duration::from_secs(30))?,
            vec![message(1)]
        );
        // Caught up: from here on the reader's fetch waits at the broker.
        for _ in 0..3 {
            assert_eq!(reader.read_to_end(Duration::from_secs(10))?, vec![]);
        }
        writer.send(&message(2), Duration::from_secs(30))?;
        assert_eq!(
            reader.read_to_end(Duration::from_secs(10))?,
            vec![message(2)]
        );
        Ok(())
    }
}
