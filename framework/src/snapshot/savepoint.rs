//! The savepoint coordinator (run by `eddy savepoint create`) and savepoint lookup.
//!
//! A savepoint is a consistent cut of the whole app, taken in three rounds over the control
//! topic: every stream thread commits and pauses its external inputs; then, depth by depth,
//! sub-topologies read their repartition inputs to the end, so no record is in flight
//! between sub-topologies; then every thread snapshots its tasks. The manifest is written
//! only when every task's part is in the store, and the app resumes either way.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::BaseConsumer;

use super::control::{ControlChannel, ControlMessage};
use super::location::{S3Settings, StoreLocation};
use super::manifest::{Manifest, TaskSnapshot, MANIFEST_FORMAT};
use super::paths::{self, savepoint_key};
use super::store::{get_json, put_json, SnapshotStore};
use super::SnapshotError;
use crate::backoff::Backoff;
use crate::kafka::KafkaSettings;
use crate::record::wall_clock_ms;

/// Where a savepoint lives: `<store>/<application id>/savepoints/<id>`, the store a
/// directory or an `s3://` location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavepointLocation {
    /// The snapshot store.
    pub store: StoreLocation,
    /// The app it was taken from.
    pub application_id: String,
    /// Savepoint id.
    pub id: String,
}

impl SavepointLocation {
    /// Parses a savepoint's location (`/snap/app/savepoints/sp-1`,
    /// `s3://bucket/prefix/app/savepoints/sp-1`).
    ///
    /// # Errors
    /// The text does not have the savepoint layout.
    pub fn parse(text: &str) -> Result<Self, SnapshotError> {
        let bad = || {
            SnapshotError::Missing(format!(
                "savepoint at {text}: expected <store>/<application id>/savepoints/<id>"
            ))
        };
        let mut parts = text.trim_end_matches('/').rsplitn(4, '/');
        let (Some(id), Some("savepoints"), Some(app), Some(root)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if id.is_empty()
            || app.is_empty()
            || (root.starts_with("s3:") && !root.starts_with("s3://"))
        {
            return Err(bad());
        }
        let root = if root.is_empty() { "/" } else { root };
        Ok(SavepointLocation {
            store: StoreLocation::parse(root)?,
            application_id: app.to_owned(),
            id: id.to_owned(),
        })
    }

    /// The savepoint's location as text.
    pub fn path(&self) -> String {
        self.store
            .join(&savepoint_key(&self.application_id, &self.id))
    }

    /// Opens the store holding it.
    ///
    /// # Errors
    /// See [`StoreLocation::open`].
    pub fn open(&self, s3: &S3Settings) -> Result<Arc<dyn SnapshotStore>, SnapshotError> {
        self.store.open(s3)
    }
}

/// Reads the manifest of the savepoint at `path` (its location, see
/// [`SavepointLocation::parse`]), reaching S3 with `s3`.
///
/// # Errors
/// The path is not a savepoint, or it is incomplete (no manifest) or unreadable.
pub fn read_manifest(
    path: &str,
    s3: &S3Settings,
) -> Result<(SavepointLocation, Manifest), SnapshotError> {
    let location = SavepointLocation::parse(path)?;
    let manifest = manifest_in(location.open(s3)?.as_ref(), &location)?;
    Ok((location, manifest))
}

/// The manifest of the savepoint at `location` in `store`.
fn manifest_in(
    store: &dyn SnapshotStore,
    location: &SavepointLocation,
) -> Result<Manifest, SnapshotError> {
    let path = location.path();
    let key = paths::savepoint_manifest(&savepoint_key(&location.application_id, &location.id));
    let manifest: Manifest = get_json(store, &key)?.ok_or_else(|| {
        SnapshotError::Missing(format!(
            "manifest of savepoint {path} (the savepoint is incomplete or does not exist)"
        ))
    })?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(SnapshotError::invalid(
            format!("manifest of savepoint {path}"),
            format!(
                "format {} (this version reads {MANIFEST_FORMAT})",
                manifest.format
            ),
        ));
    }
    Ok(manifest)
}

/// The complete savepoints of `application_id` in `store` with their locations, oldest
/// first. Partial ones (no manifest) are never listed.
///
/// # Errors
/// The store cannot be read.
pub fn list_savepoints(
    store: &dyn SnapshotStore,
    application_id: &str,
) -> Result<Vec<(String, Manifest)>, SnapshotError> {
    let mut out = Vec::new();
    for id in store.list(&paths::savepoints(application_id))? {
        let location = SavepointLocation {
            store: store.location(),
            application_id: application_id.to_owned(),
            id,
        };
        match manifest_in(store, &location) {
            Ok(manifest) => out.push((location.path(), manifest)),
            Err(SnapshotError::Missing(_)) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by_key(|(_, m)| m.created_ms);
    Ok(out)
}

/// The stream threads in the app's consumer group (their client ids), once the group is
/// stable (not rebalancing), waiting up to `timeout` for that.
fn group_threads(
    settings: &KafkaSettings,
    application_id: &str,
    timeout: Duration,
) -> Result<BTreeSet<String>, SnapshotError> {
    let consumer: BaseConsumer =
        settings
            .client_config("eddy-savepoint")
            .create()
            .map_err(|source| SnapshotError::Kafka {
                what: "creating a Kafka client".to_owned(),
                source,
            })?;
    let mut rebalancing = Backoff::fixed(Duration::from_millis(200)).start(timeout);
    loop {
        let group =
            crate::kafka::describe_group(&consumer, application_id, timeout).map_err(|source| {
                SnapshotError::Kafka {
                    what: format!("describing consumer group `{application_id}`"),
                    source,
                }
            })?;
        if !group.rebalancing() || !rebalancing.wait() {
            return Ok(group.threads().map(str::to_owned).collect());
        }
    }
}

/// Waits until every thread in `expected` answered savepoint `id` as `accept` wants;
/// returns the accepted messages.
fn collect(
    channel: &ControlChannel,
    id: &str,
    expected: &BTreeSet<String>,
    deadline: Instant,
    what: &str,
    accept: impl Fn(&ControlMessage) -> Option<String>,
) -> Result<Vec<ControlMessage>, SnapshotError> {
    let mut answered = BTreeSet::new();
    let mut out = Vec::new();
    while !expected.is_subset(&answered) {
        if Instant::now() >= deadline {
            let missing: Vec<&String> = expected.difference(&answered).collect();
            return Err(SnapshotError::Timeout(format!(
                "savepoint {id}: no `{what}` from {missing:?}"
            )));
        }
        let Some(message) = channel.poll(Duration::from_millis(200))? else {
            continue;
        };
        if let ControlMessage::SavepointFailed {
            id: failed,
            thread,
            reason,
        } = &message
        {
            if failed == id {
                return Err(SnapshotError::Failed {
                    id: id.to_owned(),
                    reason: format!("thread {thread}: {reason}"),
                });
            }
        }
        if let Some(thread) = accept(&message) {
            answered.insert(thread);
            out.push(message);
        }
    }
    Ok(out)
}

/// [`create_savepoint`], run again after a failed round (a rebalance or a restoring task
/// interrupted it) up to `attempts` times in all.
///
/// # Errors
/// The last attempt's error, or at once an error no new round can mend.
pub fn create_savepoint_retrying(
    settings: &KafkaSettings,
    application_id: &str,
    store: &dyn SnapshotStore,
    timeout: Duration,
    attempts: u32,
    progress: &mut dyn FnMut(&str),
) -> Result<(String, Manifest), SnapshotError> {
    let mut attempt = 1;
    loop {
        match create_savepoint(settings, application_id, store, timeout, progress) {
            Err(e @ SnapshotError::Failed { .. }) if attempt < attempts => {
                progress(&format!("{e}; trying again"));
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Takes a savepoint of the running app `application_id` into `store` and returns its
/// directory and manifest. `progress` hears about each round.
///
/// # Errors
/// No instance is running, a thread failed or did not answer within `timeout`, or the store
/// cannot be written. The app resumes processing in every case.
pub fn create_savepoint(
    settings: &KafkaSettings,
    application_id: &str,
    store: &dyn SnapshotStore,
    timeout: Duration,
    progress: &mut dyn FnMut(&str),
) -> Result<(String, Manifest), SnapshotError> {
    let threads = group_threads(settings, application_id, timeout)?;
    if threads.is_empty() {
        return Err(SnapshotError::NotRunning(application_id.to_owned()));
    }
    let id = format!("sp-{}", wall_clock_ms());
    let channel = ControlChannel::open(settings, application_id, &format!("eddy-{id}"), false)?;
    let deadline = Instant::now() + timeout;
    let deadline_ms = wall_clock_ms() + i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
    progress(&format!(
        "savepoint {id}: pausing {} stream thread(s) of `{application_id}`",
        threads.len()
    ));
    channel.send(
        &ControlMessage::SavepointBegin {
            id: id.clone(),
            target: store.location().to_string(),
            deadline_ms,
        },
        timeout,
    )?;
    let result = run_rounds(
        &channel,
        &id,
        application_id,
        store,
        &threads,
        deadline,
        progress,
    );
    let completed = result.is_ok();
    let end = channel.send(
        &ControlMessage::SavepointEnd {
            id: id.clone(),
            completed,
        },
        timeout,
    );
    let (path, manifest) = result?;
    end?;
    progress(&format!(
        "savepoint {id}: complete, {} task(s), {} bytes, at {}",
        manifest.tasks.len(),
        manifest.size(),
        path
    ));
    Ok((path, manifest))
}

fn run_rounds(
    channel: &ControlChannel,
    id: &str,
    application_id: &str,
    store: &dyn SnapshotStore,
    threads: &BTreeSet<String>,
    deadline: Instant,
    progress: &mut dyn FnMut(&str),
) -> Result<(String, Manifest), SnapshotError> {
    let paused = collect(channel, id, threads, deadline, "paused", |m| match m {
        ControlMessage::SavepointPaused { id: i, thread, .. } if i == id => Some(thread.clone()),
        _ => None,
    })?;
    let mut all_tasks = BTreeSet::new();
    let mut owned = BTreeSet::new();
    let mut levels = 0;
    let mut fingerprints = BTreeSet::new();
    for message in &paused {
        if let ControlMessage::SavepointPaused {
            tasks,
            all_tasks: all,
            levels: l,
            topology,
            ..
        } = message
        {
            fingerprints.insert(topology.clone());
            owned.extend(tasks.iter().cloned());
            all_tasks.extend(all.iter().cloned());
            levels = levels.max(*l);
        }
    }
    if fingerprints.len() > 1 {
        return Err(SnapshotError::Failed {
            id: id.to_owned(),
            reason: format!(
                "instances run different topologies ({fingerprints:?}); finish the upgrade first"
            ),
        });
    }
    let fingerprint = fingerprints.into_iter().next().unwrap_or_default();
    let unowned: Vec<&String> = all_tasks.difference(&owned).collect();
    if !unowned.is_empty() {
        return Err(SnapshotError::Failed {
            id: id.to_owned(),
            reason: format!(
                "tasks {unowned:?} are not running on any instance (a rebalance is under way)"
            ),
        });
    }
    progress(&format!(
        "savepoint {id}: inputs paused; draining {levels} level(s) of repartition topics"
    ));
    for level in 1..=levels {
        channel.send(
            &ControlMessage::SavepointDrain {
                id: id.to_owned(),
                level,
            },
            deadline.saturating_duration_since(Instant::now()),
        )?;
        collect(channel, id, threads, deadline, "drained", |m| match m {
            ControlMessage::SavepointDrained {
                id: i,
                thread,
                level: l,
            } if i == id && *l == level => Some(thread.clone()),
            _ => None,
        })?;
        progress(&format!("savepoint {id}: level {level} drained"));
    }
    channel.send(
        &ControlMessage::SavepointSnapshot { id: id.to_owned() },
        deadline.saturating_duration_since(Instant::now()),
    )?;
    collect(channel, id, threads, deadline, "snapshotted", |m| match m {
        ControlMessage::SavepointSnapshotted { id: i, thread, .. } if i == id => {
            Some(thread.clone())
        }
        _ => None,
    })?;
    let prefix = savepoint_key(application_id, id);
    let mut tasks = Vec::new();
    for task in &all_tasks {
        let key = paths::savepoint_task(&prefix, task);
        let part: TaskSnapshot = get_json(store, &key)?
            .ok_or_else(|| SnapshotError::Missing(format!("part of task {task} ({key})")))?;
        tasks.push(part);
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        id: id.to_owned(),
        application_id: application_id.to_owned(),
        topology_fingerprint: fingerprint,
        created_ms: wall_clock_ms(),
        tasks,
    };
    put_json(store, &paths::savepoint_manifest(&prefix), &manifest)?;
    Ok((store.location().join(&prefix), manifest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::DirectoryStore;

    #[test]
    fn a_savepoint_location_names_its_store_app_and_id() {
        let location = SavepointLocation::parse("/snap/wordcount/savepoints/sp-1").unwrap();
        assert_eq!(
            location.store,
            StoreLocation::Directory(std::path::PathBuf::from("/snap"))
        );
        assert_eq!(location.application_id, "wordcount");
        assert_eq!(location.id, "sp-1");
        assert_eq!(location.path(), "/snap/wordcount/savepoints/sp-1");
        let top = SavepointLocation::parse("/wordcount/savepoints/sp-1").unwrap();
        assert_eq!(top.path(), "/wordcount/savepoints/sp-1");
        let s3 = SavepointLocation::parse("s3://snaps/prod/wordcount/savepoints/sp-2/").unwrap();
        assert_eq!(s3.store.to_string(), "s3://snaps/prod");
        assert_eq!(s3.path(), "s3://snaps/prod/wordcount/savepoints/sp-2");
        for bad in ["/snap/wordcount/sp-1", "s3://wordcount/savepoints/sp-1"] {
            let e = SavepointLocation::parse(bad).unwrap_err();
            assert!(
                e.to_string()
                    .contains("expected <store>/<application id>/savepoints/<id>"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn only_complete_savepoints_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirectoryStore::new(dir.path());
        store
            .put_document("app/savepoints/sp-1/tasks/0_0.json", b"{}")
            .unwrap();
        let manifest = Manifest {
            format: MANIFEST_FORMAT,
            id: "sp-2".to_owned(),
            application_id: "app".to_owned(),
            topology_fingerprint: String::new(),
            created_ms: 5,
            tasks: Vec::new(),
        };
        store
            .put_document(
                "app/savepoints/sp-2/manifest.json",
                &serde_json::to_vec(&manifest).unwrap(),
            )
            .unwrap();
        let listed = list_savepoints(&store, "app").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].1, manifest);
        let partial = dir.path().join("app/savepoints/sp-1");
        let partial =
            read_manifest(&partial.display().to_string(), &S3Settings::default()).unwrap_err();
        assert!(partial.to_string().contains("incomplete"), "{partial}");
    }
}
