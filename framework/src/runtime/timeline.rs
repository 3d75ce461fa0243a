//! The app's state timeline: which savepoint (if any) its state descends from, read from the
//! control topic at start, and applying `snapshot.from_savepoint` once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::TopicPartitionList;

use super::RuntimeError;
use crate::backoff::Backoff;
use crate::config::EddyConfig;
use crate::shared::Plan;
use crate::snapshot::{
    compatibility, read_manifest, ControlChannel, ControlMessage, Manifest, SavepointLocation,
    SnapshotError, StoreIdentity,
};
use crate::topology::{changelog_topic, Topology};

/// The savepoint the app's state descends from.
#[derive(Debug, Clone)]
pub(crate) struct Base {
    /// The state timeline that started with the restore.
    pub epoch: String,
    /// Where the savepoint is.
    pub location: SavepointLocation,
    /// Its manifest, when it could be read (needed only by tasks without state of `epoch`).
    pub manifest: Option<Manifest>,
    /// Per task, per store: the changelog offset replay continues from.
    pub positions: BTreeMap<String, BTreeMap<String, i64>>,
}

/// What every task needs to know about the app's history.
#[derive(Debug, Clone, Default)]
pub(crate) struct Timeline {
    /// `None` until a savepoint was ever applied to the app.
    pub base: Option<Base>,
    /// True when this instance applied `snapshot.from_savepoint` as it started.
    pub applied_here: bool,
}

impl Timeline {
    /// The current epoch.
    pub(crate) fn epoch(&self) -> Option<&str> {
        self.base.as_ref().map(|b| b.epoch.as_str())
    }
}

fn snapshot_error(e: SnapshotError) -> RuntimeError {
    RuntimeError::Savepoint(e)
}

/// The identities of `topology`'s stores (positions unknown).
pub(crate) fn store_identities(topology: &Topology) -> Vec<StoreIdentity> {
    topology.stores.values().map(|s| s.identity(None)).collect()
}

/// Reads the timeline from the control topic and applies `snapshot.from_savepoint` when it
/// has not been applied yet.
pub(crate) fn establish(
    config: &EddyConfig,
    topology: &Topology,
    plan: &Plan,
    client_id: &str,
) -> Result<Timeline, RuntimeError> {
    let app = &config.application.id;
    let channel = ControlChannel::open(&config.kafka, app, &format!("{client_id}-start"), true)
        .map_err(snapshot_error)?;
    let mut history = channel
        .read_to_end(Duration::from_secs(30))
        .map_err(snapshot_error)?;
    if let Some(path) = &config.snapshot.from_savepoint {
        let (location, manifest) =
            read_manifest(path, &config.snapshot.s3).map_err(snapshot_error)?;
        check(topology, plan, path, &manifest)?;
        if last_restore(&history).is_some_and(|(id, ..)| id == manifest.id) {
            tracing::info!(
                savepoint = manifest.id,
                "savepoint already applied; continuing from the app's own progress"
            );
        } else if claim(config, &channel, &mut history, &manifest.id, client_id)? {
            let base = apply(config, plan, &channel, location, manifest)?;
            return Ok(Timeline {
                base: Some(base),
                applied_here: true,
            });
        } else {
            follow(config, &channel, &mut history, &manifest.id)?;
        }
    }
    let last = last_restore(&history);
    let Some((_, path, epoch, positions)) = last else {
        return Ok(Timeline::default());
    };
    let location = SavepointLocation::parse(&path).map_err(snapshot_error)?;
    let manifest = match read_manifest(&path, &config.snapshot.s3) {
        Ok((_, manifest)) => Some(manifest),
        Err(e) => {
            tracing::warn!(error = %e, "the savepoint this app's state descends from cannot be read; tasks without local state or a checkpoint will fail to start");
            None
        }
    };
    Ok(Timeline {
        base: Some(Base {
            epoch,
            location,
            manifest,
            positions,
        }),
        applied_here: false,
    })
}

/// The last restore record: savepoint id, path, epoch and changelog positions.
type Restore = (
    String,
    String,
    String,
    BTreeMap<String, BTreeMap<String, i64>>,
);

fn last_restore(history: &[ControlMessage]) -> Option<Restore> {
    history.iter().rev().find_map(|m| match m {
        ControlMessage::Restored {
            savepoint,
            path,
            epoch,
            positions,
        } => Some((
            savepoint.clone(),
            path.clone(),
            epoch.clone(),
            positions.clone(),
        )),
        _ => None,
    })
}

/// How long a restore claim stays valid: an instance that claimed and died must not block
/// the next start forever.
const CLAIM_VALID_MS: i64 = 120_000;

/// Claims the right to apply savepoint `id`: writes a claim, reads the topic to its end, and
/// wins when the first live claim for `id` is its own. Instances starting together thus agree
/// on one of them, which the single partition's order decides.
fn claim(
    config: &EddyConfig,
    channel: &ControlChannel,
    history: &mut Vec<ControlMessage>,
    id: &str,
    instance: &str,
) -> Result<bool, RuntimeError> {
    let now = crate::record::wall_clock_ms();
    channel
        .send(
            &ControlMessage::RestoreClaim {
                savepoint: id.to_owned(),
                instance: instance.to_owned(),
                claimed_ms: now,
            },
            config.kafka.transaction_timeout,
        )
        .map_err(snapshot_error)?;
    history.extend(
        channel
            .read_to_end(Duration::from_secs(30))
            .map_err(snapshot_error)?,
    );
    let winner = history.iter().find_map(|m| match m {
        ControlMessage::RestoreClaim {
            savepoint,
            instance,
            claimed_ms,
        } if savepoint == id && now - claimed_ms < CLAIM_VALID_MS => Some(instance.clone()),
        _ => None,
    });
    let won = winner.as_deref() == Some(instance);
    if !won {
        tracing::info!(savepoint = id, winner = ?winner, "another instance applies the savepoint; waiting for it");
    }
    Ok(won)
}

/// Waits until the instance that won the claim wrote the restore record of savepoint `id`.
fn follow(
    config: &EddyConfig,
    channel: &ControlChannel,
    history: &mut Vec<ControlMessage>,
    id: &str,
) -> Result<(), RuntimeError> {
    let deadline = Instant::now()
        + config.processing.session_timeout * 2
        + config.kafka.transaction_timeout * 2
        + Duration::from_secs(60);
    while last_restore(history).is_none_or(|(s, ..)| s != id) {
        if Instant::now() >= deadline {
            return Err(RuntimeError::Savepoint(SnapshotError::Failed {
                id: id.to_owned(),
                reason: "the instance that claimed its restore did not finish it; start again"
                    .to_owned(),
            }));
        }
        if let Some(message) = channel
            .poll(Duration::from_millis(200))
            .map_err(snapshot_error)?
        {
            history.push(message);
        }
    }
    Ok(())
}

/// Refuses a savepoint this version cannot use.
fn check(
    topology: &Topology,
    plan: &Plan,
    path: &str,
    manifest: &Manifest,
) -> Result<(), RuntimeError> {
    let incompatible = |problems: Vec<String>| {
        RuntimeError::Savepoint(SnapshotError::Incompatible {
            path: path.to_owned(),
            problems,
        })
    };
    let reads = |store: &str, key: bool, written: &str| {
        topology.stores.get(store)?.reads_format(key, written)
    };
    let notes = compatibility(&manifest.stores(), &store_identities(topology), &reads)
        .map_err(incompatible)?;
    for note in notes {
        tracing::info!(savepoint = manifest.id, "{note}");
    }
    let saved: BTreeSet<String> = manifest.tasks.iter().map(|t| t.task.clone()).collect();
    let now: BTreeSet<String> = plan.tasks.iter().map(ToString::to_string).collect();
    if saved != now {
        return Err(incompatible(vec![format!(
            "the task layout changed (saved {} tasks, this version has {}): sub-topologies or input partition counts differ",
            saved.len(),
            now.len()
        )]));
    }
    Ok(())
}

/// Commits the savepoint's input offsets to the (empty) consumer group, records the
/// changelog offsets replay continues from, and writes the restore record.
fn apply(
    config: &EddyConfig,
    plan: &Plan,
    channel: &ControlChannel,
    location: SavepointLocation,
    manifest: Manifest,
) -> Result<Base, RuntimeError> {
    let app = &config.application.id;
    let kafka = |what: String| move |source| RuntimeError::Kafka { what, source };
    let consumer: BaseConsumer = config
        .kafka
        .client_config_with(
            &format!("{app}-savepoint-restore"),
            &[
                ("group.id", app),
                ("enable.auto.commit", "false"),
                ("isolation.level", "read_committed"),
            ],
        )
        .create()
        .map_err(kafka("creating the savepoint restore client".to_owned()))?;
    let uncommitted: BaseConsumer = config
        .kafka
        .client_config_with(
            &format!("{app}-savepoint-restore-ends"),
            &[
                ("group.id", &format!("{app}-savepoint-restore-ends")),
                ("isolation.level", "read_uncommitted"),
            ],
        )
        .create()
        .map_err(kafka("creating the savepoint restore client".to_owned()))?;
    let timeout = Duration::from_secs(10);
    // Instances that were just stopped may still be leaving (or, killed, waiting for their
    // session to expire): give them that long before refusing.
    let mut leaving = Backoff::fixed(Duration::from_millis(200))
        .start(config.processing.session_timeout * 2 + Duration::from_secs(5));
    loop {
        let group = crate::kafka::describe_group(&consumer, app, timeout)
            .map_err(kafka(format!("describing consumer group `{app}`")))?;
        let members: Vec<&str> = group.threads().collect();
        if members.is_empty() {
            break;
        }
        if !leaving.wait() {
            return Err(RuntimeError::Savepoint(SnapshotError::Failed {
                id: manifest.id.clone(),
                reason: format!("stop every instance of `{app}` before restoring a savepoint (running: {members:?})"),
            }));
        }
    }
    // Ends are read once no transaction is open (a killed instance's may linger until the
    // broker aborts it).
    let aborted_within = config.kafka.transaction_timeout * 2 + Duration::from_secs(10);
    let stable_end = |topic: &str, partition: i32| -> Result<i64, RuntimeError> {
        let mut aborting = Backoff::fixed(Duration::from_millis(100)).start(aborted_within);
        loop {
            let (_, stable) = crate::kafka::watermarks(&consumer, topic, partition, timeout)
                .map_err(kafka(format!("reading the end of `{topic}` [{partition}]")))?;
            let (_, high) = crate::kafka::watermarks(&uncommitted, topic, partition, timeout)
                .map_err(kafka(format!("reading the end of `{topic}` [{partition}]")))?;
            if stable >= high {
                return Ok(stable);
            }
            if !aborting.wait() {
                return Err(RuntimeError::Savepoint(SnapshotError::Failed {
                    id: manifest.id.clone(),
                    reason: format!(
                        "`{topic}` [{partition}] kept an open transaction for {aborted_within:?}: its end cannot be read"
                    ),
                }));
            }
        }
    };
    let mut offsets = TopicPartitionList::new();
    let mut positions: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for task in &manifest.tasks {
        for input in &task.inputs {
            let topic = if input.internal {
                // The cut left nothing in flight: the new run skips whatever is there now.
                let name = input
                    .topic
                    .strip_prefix(&format!("{}-", manifest.application_id))
                    .unwrap_or(&input.topic);
                format!("{app}-{name}")
            } else {
                input.topic.clone()
            };
            let offset = if input.internal {
                stable_end(&topic, input.partition)?
            } else if input.offset < 0 {
                let (low, _) =
                    crate::kafka::watermarks(&consumer, &topic, input.partition, timeout)
                        .map_err(kafka(format!("reading the start of `{topic}`")))?;
                low
            } else {
                input.offset
            };
            crate::runtime::stream_time::add_offset(
                &mut offsets,
                &topic,
                input.partition,
                offset,
                input.stream_time.unwrap_or(i64::MIN),
                // A restore starts a new commit history: the next owner rolls back what a
                // two-phase sink left prepared, as its Kafka commit is no longer the app's.
                None,
            )
            .map_err(kafka("building the offsets to commit".to_owned()))?;
        }
        for store in &task.stores {
            let topic = changelog_topic(app, &store.name);
            if !plan.partitions.contains_key(&topic) {
                continue;
            }
            let partition = task
                .task
                .rsplit('_')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            positions
                .entry(task.task.clone())
                .or_default()
                .insert(store.name.clone(), stable_end(&topic, partition)?);
        }
    }
    if offsets.count() > 0 {
        consumer
            .commit(&offsets, CommitMode::Sync)
            .map_err(kafka(format!(
                "committing the savepoint's input offsets for group `{app}`"
            )))?;
    }
    let epoch = format!("{}@{}", manifest.id, crate::record::wall_clock_ms());
    channel
        .send(
            &ControlMessage::Restored {
                savepoint: manifest.id.clone(),
                path: location.path(),
                epoch: epoch.clone(),
                positions: positions.clone(),
            },
            timeout,
        )
        .map_err(snapshot_error)?;
    tracing::info!(
        savepoint = manifest.id,
        from_app = manifest.application_id,
        epoch,
        "savepoint applied: input offsets committed, tasks will load its state"
    );
    Ok(Base {
        epoch,
        location,
        manifest: Some(manifest),
        positions,
    })
}
