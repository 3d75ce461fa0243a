//! Restores task stores from their changelogs: from the position stored with the data to the
//! changelog's last stable offset, after any transaction still open on it has ended.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::active_task::ActiveTask;
use super::task_phase::TaskPhase;
use super::{RestoreFailure, RuntimeError};
use crate::kafka::KafkaSettings;
use crate::record::wall_clock_ms;
use crate::shared::{StateSource, StoreReplay};
use crate::state::StateError;
use crate::task::TaskId;

/// Records replayed before they are written to RocksDB in one batch.
const BATCH: usize = 5_000;

/// Records replayed from one changelog partition, the offset after the last of them, and
/// the highest input offsets their transactions carried ([`super::state_position`]).
pub(crate) type Replayed = (
    Vec<(Vec<u8>, Option<Vec<u8>>)>,
    i64,
    std::collections::BTreeMap<String, i64>,
);

/// Replayed records per changelog partition `(topic, partition)`.
pub(crate) type Batch = HashMap<(String, i32), Replayed>;

/// How long one poll of a changelog reader waits before it asks whether the reading is done.
const POLL_SLICE: Duration = Duration::from_millis(5);

/// Reads changelog records from `consumer` for up to `budget` (at most [`BATCH`]), grouped
/// by partition; returns them with their count. Stops early when a poll finds nothing and
/// `finished` says every partition read is where it should be (a changelog's tail is often
/// only a transaction marker, which no poll returns). Reports (a lost broker connection) are
/// logged and read past.
pub(crate) fn read_batch(
    consumer: &BaseConsumer,
    budget: Duration,
    finished: impl Fn(&BaseConsumer) -> bool,
) -> Result<(Batch, usize), rdkafka::error::KafkaError> {
    let deadline = Instant::now() + budget;
    let mut buffered: Batch = HashMap::new();
    let mut count = 0;
    while count < BATCH {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(result) = consumer.poll(left.min(POLL_SLICE)) else {
            if left <= POLL_SLICE || finished(consumer) {
                break;
            }
            continue;
        };
        let msg = match result {
            Ok(msg) => msg,
            // A lost broker connection: librdkafka reconnects and fetches on by itself.
            Err(e) if crate::kafka::is_report(&e) => {
                tracing::debug!(error = %e, "changelog reader report");
                if Instant::now() >= deadline {
                    break;
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        let entry = buffered
            .entry((msg.topic().to_owned(), msg.partition()))
            .or_insert_with(|| (Vec::new(), 0, std::collections::BTreeMap::new()));
        entry.0.push((
            msg.key().map(<[u8]>::to_vec).unwrap_or_default(),
            msg.payload().map(<[u8]>::to_vec),
        ));
        entry.1 = msg.offset() + 1;
        if let Some(headers) = msg.headers() {
            for header in rdkafka::message::Headers::iter(headers) {
                if header.key == super::state_position::HEADER {
                    if let Some(value) = header.value {
                        super::state_position::merge(value, &mut entry.2);
                    }
                }
            }
        }
        count += 1;
        if Instant::now() >= deadline {
            break;
        }
    }
    Ok((buffered, count))
}

/// Reads changelogs for the tasks of one stream thread.
pub(crate) struct Restorer {
    /// read_committed, no group: replays committed changelog records only.
    committed: BaseConsumer,
    /// read_uncommitted: its high watermark shows whether a transaction is open.
    uncommitted: BaseConsumer,
    /// Changelog partitions being read → (task, store index, target).
    reading: HashMap<(String, i32), (TaskId, usize, i64)>,
    /// Where each partition being read started, for re-assignment before its first record.
    starts: HashMap<(String, i32), i64>,
    /// How long a changelog may stay unstable (an earlier owner's open transaction) before
    /// restore fails; the broker aborts such a transaction after its timeout.
    stable_deadline: Duration,
    metrics: std::sync::Arc<super::Metrics>,
    /// Changelog topics whose metadata both clients have: a watermark query for a partition
    /// the client knows nothing about first waits for a metadata refresh.
    known_topics: std::collections::HashSet<String>,
    /// Each changelog's `delete.retention.ms`, read once (`None`: unknown).
    retention: HashMap<String, Option<i64>>,
    /// Reads changelog configs; created with the restorer when the topology has changelogs,
    /// so that it is connected by the first restore (a client created then added about
    /// 100 ms to every recovery).
    admin: Option<crate::kafka::TopicAdmin>,
}

impl Restorer {
    pub(crate) fn new(
        settings: &KafkaSettings,
        client_id: &str,
        metrics: std::sync::Arc<super::Metrics>,
        changelogs: bool,
    ) -> Result<Self, RuntimeError> {
        let make = |isolation: &str| -> Result<BaseConsumer, RuntimeError> {
            let mut config = settings.consumer_config_with(&format!("{client_id}-restore"), &[]);
            // The group id is never joined or committed to; librdkafka needs one to report
            // positions of an assigned partition.
            config
                .set("group.id", format!("{client_id}-restore"))
                .set("isolation.level", isolation)
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("auto.offset.reset", "earliest")
                // A changelog's tail is often only a transaction marker: a fetch that finds
                // no record must not hold the restore for the default 500 ms.
                .set("fetch.wait.max.ms", "10");
            config.create().map_err(|source| RuntimeError::Kafka {
                what: "creating the restore consumer".to_owned(),
                source,
            })
        };
        Ok(Restorer {
            committed: make("read_committed")?,
            uncommitted: make("read_uncommitted")?,
            reading: HashMap::new(),
            starts: HashMap::new(),
            known_topics: std::collections::HashSet::new(),
            retention: HashMap::new(),
            admin: if changelogs {
                crate::kafka::TopicAdmin::new(settings)
                    .inspect_err(|e| {
                        tracing::warn!(error = %e, "cannot create a client to read changelog configs");
                    })
                    .ok()
            } else {
                None
            },
            stable_deadline: settings.transaction_timeout * 2 + Duration::from_secs(10),
            metrics,
        })
    }

    /// The `delete.retention.ms` of changelog `topic`, read from the brokers once; `None`
    /// when it cannot be read (then only the position decides whether a copy is stale).
    fn delete_retention(&mut self, topic: &str) -> Option<i64> {
        if let Some(known) = self.retention.get(topic) {
            return *known;
        }
        let admin = self.admin.as_ref()?;
        let read = admin.topic_config(topic, "delete.retention.ms");
        let value = match read {
            Ok(value) => value.and_then(|v| v.parse().ok()),
            Err(e) => {
                tracing::warn!(topic, error = %e, "cannot read the changelog's delete.retention.ms");
                return None; // asked again next time
            }
        };
        self.retention.insert(topic.to_owned(), value);
        value
    }

    /// True while some changelog partition is being read.
    pub(crate) fn busy(&self) -> bool {
        !self.reading.is_empty()
    }

    /// Drops the reads of tasks that were closed before they finished restoring, with one
    /// re-assignment for all of them.
    pub(crate) fn forget(&mut self, tasks: &[TaskId]) -> Result<(), RuntimeError> {
        let gone: Vec<(String, i32)> = self
            .reading
            .iter()
            .filter(|(_, (t, _, _))| tasks.contains(t))
            .map(|(tp, _)| tp.clone())
            .collect();
        self.unassign(&gone)
    }

    /// Starts reading the stores of `task` whose changelog has become stable; stores already
    /// at the end are marked done at once.
    pub(crate) fn start(&mut self, task: &mut ActiveTask) -> Result<(), RuntimeError> {
        let partition = task.id.partition;
        let mut added = false;
        let TaskPhase::Restoring { since, restores } = &mut task.phase else {
            return Ok(());
        };
        for (i, restore) in restores.iter_mut().enumerate() {
            if restore.done || restore.target.is_some() {
                continue;
            }
            let asked = Instant::now();
            if !self.known_topics.contains(&restore.topic) {
                for client in [&self.committed, &self.uncommitted] {
                    client
                        .fetch_metadata(Some(&restore.topic), Duration::from_secs(10))
                        .map_err(|source| RuntimeError::Kafka {
                            what: format!("reading the metadata of changelog `{}`", restore.topic),
                            source,
                        })?;
                }
                self.known_topics.insert(restore.topic.clone());
            }
            let watermarks = |consumer: &BaseConsumer| {
                crate::kafka::watermarks(
                    consumer,
                    &restore.topic,
                    partition,
                    Duration::from_secs(10),
                )
                .map_err(|source| RuntimeError::Kafka {
                    what: format!(
                        "reading the end of changelog `{}` [{partition}]",
                        restore.topic
                    ),
                    source,
                })
            };
            let (low, stable) = watermarks(&self.committed)?;
            let (_, high) = watermarks(&self.uncommitted)?;
            tracing::debug!(task = %task.id, changelog = restore.topic, took = ?asked.elapsed(), "changelog ends read");
            if high > stable {
                // The previous owner's transaction is still open on this changelog: its
                // records may yet commit. Wait for it to end.
                let waiting = *since;
                if waiting.elapsed() > self.stable_deadline {
                    return Err(RuntimeError::Restore {
                        task: task.id,
                        reason: RestoreFailure::OpenTransaction {
                            topic: restore.topic.clone(),
                            partition,
                            waited: waiting.elapsed(),
                        },
                    });
                }
                continue;
            }
            let stores = task.graph.stores_mut();
            let position = stores
                .changelog_position(&restore.store)
                .map_err(|e| state_error(task.id, e))?;
            let synced_at = stores
                .synced_at(&restore.store)
                .map_err(|e| state_error(task.id, e))?;
            let retention = self.delete_retention(&restore.topic);
            let stale = stale_copy(position, synced_at, (low, high), retention, wall_clock_ms());
            let position = match stale {
                Some(why) => {
                    tracing::warn!(
                        task = %task.id,
                        store = restore.store,
                        changelog = restore.topic,
                        partition,
                        "the local copy cannot be trusted ({why}): wiping it and restoring from the changelog"
                    );
                    task.graph
                        .stores_mut()
                        .wipe(&restore.store)
                        .map_err(|e| state_error(task.id, e))?;
                    task.state_source = StateSource::Empty;
                    None
                }
                None => position,
            };
            let start = position.unwrap_or(low);
            restore.target = Some(stable);
            tracing::info!(
                task = %task.id,
                store = restore.store,
                from = start,
                to = stable,
                "restore plan"
            );
            task.replays.push(StoreReplay {
                store: restore.store.clone(),
                from: start,
                to: stable,
            });
            if start >= stable {
                restore.done = true;
                continue;
            }
            let key = (restore.topic.clone(), partition);
            self.starts.insert(key.clone(), start);
            self.reading.insert(key, (task.id, i, stable));
            added = true;
        }
        if added {
            self.reassign()?;
        }
        Ok(())
    }

    /// Assigns every partition being read, each from where it stands (a consumer without a
    /// group can only replace its whole assignment).
    fn reassign(&mut self) -> Result<(), RuntimeError> {
        let kafka = |what: &str| {
            let what = what.to_owned();
            move |source| RuntimeError::Kafka { what, source }
        };
        let positions = self
            .committed
            .position()
            .map_err(kafka("reading changelog positions"))?;
        let mut tpl = TopicPartitionList::new();
        for (topic, partition) in self.reading.keys() {
            let current = crate::kafka::offset_in(&positions, topic, *partition);
            let start = self.starts.get(&(topic.clone(), *partition)).copied();
            let offset = current.or(start).map_or(Offset::Beginning, Offset::Offset);
            tpl.add_partition_offset(topic, *partition, offset)
                .map_err(kafka("building the changelog assignment"))?;
        }
        self.committed
            .assign(&tpl)
            .map_err(kafka("assigning changelog partitions"))
    }

    /// Reads for up to `budget`, writes what it read to the stores, and marks the stores that
    /// reached their target done.
    pub(crate) fn step(
        &mut self,
        tasks: &mut std::collections::BTreeMap<TaskId, ActiveTask>,
        budget: Duration,
    ) -> Result<(), RuntimeError> {
        if self.reading.is_empty() {
            return Ok(());
        }
        let (buffered, count) = read_batch(&self.committed, budget, |consumer| {
            self.reached_targets(consumer)
        })
        .map_err(|source| RuntimeError::Kafka {
            what: "reading a changelog".to_owned(),
            source,
        })?;
        self.metrics.add_restored(u64::try_from(count).unwrap_or(0));
        for (key, (records, next, inputs)) in buffered {
            if let Some(&(task, index, target)) = self.reading.get(&key) {
                let (topic, partition) = key;
                if next > target {
                    // Only a writer that still owns the task could have put them there.
                    tracing::warn!(%task, changelog = topic, partition, target, next, "changelog records past the restore target");
                }
                let task = tasks.get_mut(&task);
                if let Some((task, store)) = task.and_then(|t| {
                    let store = t.phase.restores().get(index)?.store.clone();
                    Some((t, store))
                }) {
                    task.graph
                        .stores_mut()
                        .apply_restored(&store, records, next)
                        .map_err(|e| state_error(task.id, e))?;
                    for (topic, offset) in inputs {
                        if let Some(input) = task.input_mut(&topic) {
                            input.state_position = input.state_position.max(Some(offset));
                        }
                    }
                }
            }
        }
        // Positions move past transaction markers too, so compare them, not record offsets.
        let positions = self
            .committed
            .position()
            .map_err(|source| RuntimeError::Kafka {
                what: "reading changelog positions".to_owned(),
                source,
            })?;
        let mut finished = Vec::new();
        for ((topic, partition), &(task_id, index, target)) in &self.reading {
            let position = positions
                .find_partition(topic, *partition)
                .and_then(|e| e.offset().to_raw());
            if position.is_some_and(|p| p >= target) {
                let task = tasks.get_mut(&task_id);
                if let Some((task, store)) = task.and_then(|t| {
                    let store = t.phase.restores().get(index)?.store.clone();
                    Some((t, store))
                }) {
                    task.graph
                        .stores_mut()
                        .apply_restored(&store, Vec::new(), position.unwrap_or(target))
                        .map_err(|e| state_error(task_id, e))?;
                    if let Some(restore) = task.phase.restores_mut().get_mut(index) {
                        restore.done = true;
                    }
                    tracing::info!(task = %task_id, store, position = position.unwrap_or(target), "restored");
                }
                finished.push((topic.clone(), *partition));
            }
        }
        self.unassign(&finished)
    }

    /// True when `consumer` stands at or past the target of every partition being read.
    fn reached_targets(&self, consumer: &BaseConsumer) -> bool {
        let Ok(positions) = consumer.position() else {
            return false;
        };
        self.reading
            .iter()
            .all(|((topic, partition), &(_, _, target))| {
                crate::kafka::offset_in(&positions, topic, *partition).is_some_and(|p| p >= target)
            })
    }

    fn unassign(&mut self, partitions: &[(String, i32)]) -> Result<(), RuntimeError> {
        if partitions.is_empty() {
            return Ok(());
        }
        for key in partitions {
            self.reading.remove(key);
            self.starts.remove(key);
        }
        self.reassign()
    }
}

/// Why a local copy at changelog `position`, last synced at `synced_at`, cannot be replayed
/// forward from there: its position is outside the changelog (recreated, truncated or purged:
/// what it holds is not what the changelog describes), or it is older than the changelog's
/// `delete.retention.ms`, so compaction may have removed deletes it never saw. `None` when it
/// can.
fn stale_copy(
    position: Option<i64>,
    synced_at: Option<i64>,
    (low, high): (i64, i64),
    delete_retention_ms: Option<i64>,
    now_ms: i64,
) -> Option<String> {
    let position = position?;
    if position < low || position > high {
        return Some(format!(
            "its changelog position {position} is outside the changelog's offsets {low}..{high}"
        ));
    }
    let (Some(synced), Some(retention)) = (synced_at, delete_retention_ms) else {
        return None;
    };
    let age = now_ms.saturating_sub(synced);
    (retention >= 0 && age > retention).then(|| {
        format!("it was last synced {age} ms ago, longer than the changelog's delete.retention.ms of {retention}")
    })
}

fn state_error(task: TaskId, source: StateError) -> RuntimeError {
    RuntimeError::Task {
        task,
        source: source.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    #[test]
    fn copies_outside_the_changelog_or_older_than_its_delete_retention_are_stale() {
        let now = 10 * DAY;
        let fresh = Some(now - 1_000);
        assert_eq!(stale_copy(Some(50), fresh, (0, 100), Some(DAY), now), None);
        assert_eq!(stale_copy(None, None, (0, 100), Some(DAY), now), None);
        assert_eq!(
            stale_copy(Some(100), fresh, (0, 100), Some(DAY), now),
            None,
            "at the end"
        );
        let beyond = stale_copy(Some(120), fresh, (0, 100), Some(DAY), now).unwrap();
        assert!(beyond.contains("position 120 is outside"), "{beyond}");
        assert!(
            stale_copy(Some(5), fresh, (10, 100), Some(DAY), now).is_some(),
            "purged"
        );
        let old = stale_copy(Some(50), Some(now - 2 * DAY), (0, 100), Some(DAY), now).unwrap();
        assert!(old.contains("delete.retention.ms"), "{old}");
        assert_eq!(
            stale_copy(Some(50), Some(now - 2 * DAY), (0, 100), None, now),
            None,
            "unknown retention: the position decides"
        );
    }
}
