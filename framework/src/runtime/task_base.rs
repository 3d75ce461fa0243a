//! A new task's starting state: local state of the app's current timeline, else the task's
//! latest checkpoint, else the savepoint the app descends from, else an empty store that the
//! changelog fills.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::shared_state::Shared;
use crate::backoff::Backoff;
use crate::runtime::{RestoreFailure, RuntimeError};
use crate::shared::StateSource;
use crate::snapshot::{download, get_json, SnapshotError, TaskSnapshot};
use crate::state::{StateError, StoreBuilder, TaskStores};
use crate::task::TaskId;
use crate::topology::changelog_topic;

/// One lock per task directory of the instance: whoever opens a task's stores (a stream
/// thread, the standby thread) holds it until the stores are open, so no one opens the
/// directory while another replaces it with a downloaded checkpoint.
#[derive(Debug, Default)]
pub(crate) struct TaskLocks(
    std::sync::Mutex<std::collections::HashMap<TaskId, std::sync::Arc<std::sync::Mutex<()>>>>,
);

impl TaskLocks {
    pub(crate) fn of(&self, id: TaskId) -> std::sync::Arc<std::sync::Mutex<()>> {
        let mut locks = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::sync::Arc::clone(locks.entry(id).or_default())
    }
}

fn open_local(
    shared: &Shared,
    dir: &Path,
    defs: &[StoreBuilder],
) -> Result<TaskStores, StateError> {
    let app = &shared.config.application.id;
    // A task moving between threads of this instance may still be closing elsewhere:
    // RocksDB's lock tells, so retry briefly.
    let mut attempts = Backoff::fixed(Duration::from_millis(20)).start(Duration::from_secs(30));
    loop {
        match TaskStores::open(
            Some(dir),
            defs,
            |store| changelog_topic(app, store),
            &shared.rocks,
        ) {
            Ok(stores) => return Ok(stores),
            Err(e) if e.is_lock_held() && attempts.wait() => {}
            Err(e) => return Err(e),
        }
    }
}

/// Opens task `id`'s stores with the best starting state available (active tasks and
/// standbys alike), and says where that state came from.
pub(crate) fn open_stores(
    shared: &Shared,
    id: TaskId,
    defs: &[StoreBuilder],
) -> Result<(TaskStores, StateSource), RuntimeError> {
    let task_error = |e: StateError| RuntimeError::Task {
        task: id,
        source: e.into(),
    };
    let lock = shared.task_locks.of(id);
    let _held = lock
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = shared.instance.task_dir(&id.to_string());
    let stores = open_local(shared, &dir, defs).map_err(task_error)?;
    let epoch = shared.timeline.epoch();
    let local_epoch = stores.epoch().map_err(task_error)?;
    let fresh = local_epoch.is_none()
        && stores
            .identities()
            .map_err(task_error)?
            .iter()
            .all(|s| s.changelog_position.is_none());
    if !fresh && local_epoch.as_deref() == epoch {
        return Ok((stores, StateSource::Local));
    }
    let started = Instant::now();
    if let Some(checkpoint) = latest_checkpoint(shared, id, epoch)? {
        drop(stores);
        let store = shared
            .snapshots
            .as_deref()
            .ok_or_else(|| missing(id, "snapshot store"))?;
        let bytes = download(store, &checkpoint.files, &dir).map_err(RuntimeError::Savepoint)?;
        let mut stores = open_local(shared, &dir, defs).map_err(task_error)?;
        stores
            .set_base(epoch, &BTreeMap::new())
            .map_err(task_error)?;
        tracing::info!(task = %id, bytes, took = ?started.elapsed(), created_ms = checkpoint.created_ms, "task state loaded from its latest checkpoint");
        return Ok((stores, StateSource::Checkpoint));
    }
    let Some(base) = &shared.timeline.base else {
        let source = if fresh {
            StateSource::Empty
        } else {
            StateSource::Local
        };
        return Ok((stores, source));
    };
    drop(stores);
    let manifest = base.manifest.as_ref().ok_or_else(|| {
        missing(
            id,
            &format!(
                "savepoint {} (its manifest cannot be read)",
                base.location.path()
            ),
        )
    })?;
    let part = manifest
        .tasks
        .iter()
        .find(|t| t.task == id.to_string())
        .ok_or_else(|| missing(id, &format!("part of savepoint {}", manifest.id)))?;
    let store = base
        .location
        .open(&shared.config.snapshot.s3)
        .map_err(RuntimeError::Savepoint)?;
    let bytes = download(store.as_ref(), &part.files, &dir).map_err(RuntimeError::Savepoint)?;
    let mut stores = open_local(shared, &dir, defs).map_err(task_error)?;
    let positions = base
        .positions
        .get(&id.to_string())
        .cloned()
        .unwrap_or_default();
    stores
        .set_base(Some(&base.epoch), &positions)
        .map_err(task_error)?;
    tracing::info!(task = %id, bytes, took = ?started.elapsed(), savepoint = manifest.id, "task state loaded from the savepoint");
    Ok((stores, StateSource::Savepoint))
}

/// The newest checkpoint of `id` on timeline `epoch`.
fn latest_checkpoint(
    shared: &Shared,
    id: TaskId,
    epoch: Option<&str>,
) -> Result<Option<TaskSnapshot>, RuntimeError> {
    let Some(store) = shared.snapshots.as_deref() else {
        return Ok(None);
    };
    let prefix = crate::snapshot::paths::checkpoints(&shared.config.application.id, id);
    let names = store.list(&prefix).map_err(RuntimeError::Savepoint)?;
    for name in names.iter().rev() {
        match get_json::<TaskSnapshot>(store, &crate::snapshot::paths::listed(&prefix, name)) {
            Ok(Some(snapshot)) if snapshot.epoch.as_deref() == epoch => return Ok(Some(snapshot)),
            Ok(_) => {}
            Err(e @ SnapshotError::Corrupt { .. }) => {
                tracing::warn!(task = %id, checkpoint = name, error = %e, "skipping an unreadable checkpoint");
            }
            Err(e) => return Err(RuntimeError::Savepoint(e)),
        }
    }
    Ok(None)
}

fn missing(task: TaskId, what: &str) -> RuntimeError {
    RuntimeError::Restore {
        task,
        reason: RestoreFailure::Missing {
            what: what.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(sub_topology: u32, partition: i32) -> TaskId {
        TaskId {
            sub_topology,
            partition,
        }
    }

    /// A stream thread and the standby thread ask for the lock separately: while one holds a
    /// task's lock the other cannot take it, and can once it is released; other tasks'
    /// locks are independent.
    #[test]
    fn a_task_lock_has_one_holder_at_a_time() {
        let locks = TaskLocks::default();
        let first = locks.of(task(1, 0));
        let held = first.lock().unwrap();
        std::thread::scope(|s| {
            let other = s.spawn(|| {
                let second = locks.of(task(1, 0));
                let taken = second.try_lock().is_ok();
                let neighbour = locks.of(task(1, 1));
                let neighbour_taken = neighbour.try_lock().is_ok();
                (taken, neighbour_taken)
            });
            let (taken, neighbour_taken) = other.join().unwrap();
            assert!(
                !taken,
                "a second holder took task 1_0's lock while it was held"
            );
            assert!(neighbour_taken, "task 1_1's lock is not task 1_0's");
        });
        drop(held);
        std::thread::scope(|s| {
            let other = s.spawn(|| locks.of(task(1, 0)).try_lock().is_ok());
            assert!(
                other.join().unwrap(),
                "the lock is free once its holder let go"
            );
        });
    }
}
