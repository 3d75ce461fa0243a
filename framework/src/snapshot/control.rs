//! The app's control topic: savepoint coordination, savepoint-restore records and instance
//! addresses, exchanged between the `eddy` tool and every instance with no extra service.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord};
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
}

impl ControlMessage {
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
    /// Delivery reports are served by [`crate::kafka::drain`] after each send.
    producer: BaseProducer,
    consumer: BaseConsumer,
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
fn watermarks(
    consumer: &BaseConsumer,
    topic: &str,
    timeout: Duration,
) -> Result<(i64, i64), SnapshotError> {
    crate::kafka::watermarks(consumer, topic, 0, timeout)
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
            let (_, end) = watermarks(&consumer, &topic, Duration::from_secs(30))?;
            Offset::Offset(end)
        };
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, start)
            .map_err(kafka("building the control assignment"))?;
        consumer
            .assign(&tpl)
            .map_err(kafka("assigning the control topic"))?;
        Ok(ControlChannel {
            topic,
            producer,
            consumer,
        })
    }

    /// Sends `message` and waits until Kafka acknowledged it.
    ///
    /// # Errors
    /// The message could not be delivered within `timeout`.
    pub fn send(&self, message: &ControlMessage, timeout: Duration) -> Result<(), SnapshotError> {
        let payload = serde_json::to_vec(message).map_err(|e| SnapshotError::Corrupt {
            what: "a control message".to_owned(),
            message: e.to_string(),
        })?;
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
        crate::kafka::drain(&self.producer, timeout).map_err(kafka("flushing the control producer"))
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
            match msg.payload().map(serde_json::from_slice::<ControlMessage>) {
                Some(Ok(message)) => return Ok(Some(message)),
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
        let (low, end) = watermarks(&self.consumer, &self.topic, timeout)?;
        let mut out = Vec::new();
        if end <= low {
            return Ok(out);
        }
        loop {
            let position = self
                .consumer
                .position()
                .map_err(kafka("reading the control position"))?
                .find_partition(&self.topic, 0)
                .and_then(|e| e.offset().to_raw())
                .unwrap_or(-1);
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
