//! Task snapshots: a RocksDB checkpoint taken at a commit boundary, published to the snapshot
//! store as a task part (savepoints) or a periodic checkpoint (in the background).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::TaskManager;
use crate::record::wall_clock_ms;
use crate::runtime::active_task::ActiveTask;
use crate::runtime::cadence::Duty;
use crate::runtime::RuntimeError;
use crate::snapshot::paths;
use crate::snapshot::{
    put_json, upload, HashCache, InputOffset, SnapshotError, SnapshotStore, StoreIdentity,
    TaskSnapshot,
};

/// Checkpoints kept per task; older ones are removed (their shared files stay).
const KEEP: usize = 2;

/// A task's checkpoint on local disk, not yet published.
pub(super) struct LocalCheckpoint {
    /// The RocksDB checkpoint directory.
    pub dir: PathBuf,
    /// The snapshot's description without its files.
    pub snapshot: TaskSnapshot,
}

/// Periodic checkpoint state of one stream thread.
pub(super) struct Checkpointer {
    inflight: Option<JoinHandle<()>>,
    /// Shared with the background publisher.
    pub cache: Arc<Mutex<HashCache>>,
}

impl Checkpointer {
    pub(super) fn new() -> Self {
        Checkpointer {
            inflight: None,
            cache: Arc::new(Mutex::new(HashCache::default())),
        }
    }
}

/// Uploads `local`'s files and writes its document under `key`; removes the local copy.
pub(super) fn publish(
    store: &dyn SnapshotStore,
    cache: &Mutex<HashCache>,
    mut local: LocalCheckpoint,
    key: &str,
) -> Result<TaskSnapshot, SnapshotError> {
    let result = (|| {
        let mut cache = cache.lock().map_err(|_| SnapshotError::Io {
            path: local.dir.display().to_string(),
            message: "hash cache poisoned".to_owned(),
            source: None,
        })?;
        let (files, stats) = upload(store, &local.dir, &mut cache)?;
        drop(cache);
        local.snapshot.files = files;
        put_json(store, key, &local.snapshot)?;
        tracing::debug!(
            task = local.snapshot.task,
            key,
            total = stats.total_bytes,
            copied = stats.copied_bytes,
            "task snapshot published"
        );
        Ok(local.snapshot.clone())
    })();
    let _ = std::fs::remove_dir_all(&local.dir);
    result
}

impl TaskManager {
    /// Takes a RocksDB checkpoint of `task` (committed state only) into a scratch directory.
    pub(super) fn local_checkpoint(
        &self,
        task: &ActiveTask,
        inputs: Vec<InputOffset>,
    ) -> Result<Option<LocalCheckpoint>, RuntimeError> {
        let stores = task.graph.stores();
        let task_error = |e: crate::state::StateError| RuntimeError::Task {
            task: task.id,
            source: e.into(),
        };
        let identities: Vec<StoreIdentity> = stores.identities().map_err(task_error)?;
        let created_ms = wall_clock_ms();
        let dir = self
            .shared
            .instance
            .scratch_dir(&format!("{}-{created_ms}-{}", task.id, self.thread));
        let _ = std::fs::remove_dir_all(&dir);
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|source| RuntimeError::StateDir {
                what: "creating",
                path: parent.display().to_string(),
                source,
            })?;
        }
        if !stores.checkpoint(&dir).map_err(task_error)? {
            return Ok(None);
        }
        Ok(Some(LocalCheckpoint {
            dir,
            snapshot: TaskSnapshot {
                task: task.id.to_string(),
                epoch: stores.epoch().map_err(task_error)?,
                files: Vec::new(),
                stores: identities,
                inputs,
                created_ms,
            },
        }))
    }

    /// After a commit: starts a background checkpoint of every running task when the
    /// interval passed and the previous one finished.
    pub(super) fn maybe_checkpoint(&mut self) -> Result<(), RuntimeError> {
        let (Some(interval), Some(store)) = (
            self.shared.config.snapshot.checkpoint_interval,
            self.shared.snapshots.clone(),
        ) else {
            return Ok(());
        };
        if !self.cadence.is_due(Duty::Checkpoint, interval)
            || self
                .checkpointer
                .inflight
                .as_ref()
                .is_some_and(|h| !h.is_finished())
        {
            return Ok(());
        }
        self.cadence.ran(Duty::Checkpoint);
        let started = Instant::now();
        let mut locals = Vec::new();
        for task in self.tasks.values() {
            if !task.phase.is_running() {
                continue;
            }
            if let Some(local) = self.local_checkpoint(task, Vec::new())? {
                locals.push((task.id, local));
            }
        }
        if locals.is_empty() {
            return Ok(());
        }
        tracing::debug!(tasks = locals.len(), took = ?started.elapsed(), "local checkpoints taken");
        let app = self.shared.config.application.id.clone();
        let cache = Arc::clone(&self.checkpointer.cache);
        let handle = std::thread::Builder::new()
            .name("eddy-checkpoint".to_owned())
            .spawn(move || {
                for (id, local) in locals {
                    let prefix = paths::checkpoints(&app, id);
                    let key = paths::checkpoint(&prefix, local.snapshot.created_ms);
                    match publish(store.as_ref(), &cache, local, &key) {
                        Ok(_) => prune(store.as_ref(), &prefix),
                        Err(e) => tracing::warn!(task = %id, error = %e, "checkpoint failed; the next one retries"),
                    }
                }
            })
            .map_err(|source| RuntimeError::Spawn {
                what: "checkpoint",
                source,
            })?;
        self.checkpointer.inflight = Some(handle);
        Ok(())
    }

    /// Waits (bounded) for a background checkpoint to finish, at shutdown.
    pub(super) fn finish_checkpoints(&mut self, within: Duration) {
        if let Some(handle) = self.checkpointer.inflight.take() {
            if crate::backoff::poll_until(Duration::from_millis(20), within, || {
                handle.is_finished()
            }) {
                let _ = handle.join();
            }
        }
    }
}

/// Removes all but the newest [`KEEP`] checkpoints under `prefix`.
fn prune(store: &dyn SnapshotStore, prefix: &str) {
    let Ok(names) = store.list(prefix) else {
        return;
    };
    if names.len() <= KEEP {
        return;
    }
    for name in &names[..names.len() - KEEP] {
        if let Err(e) = store.delete_document(&paths::listed(prefix, name)) {
            tracing::warn!(error = %e, "removing an old checkpoint failed");
        }
    }
}
