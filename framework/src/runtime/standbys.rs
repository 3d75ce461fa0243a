//! The registry of an instance's standby copies and active tasks, shared by the standby
//! thread and the stream threads (a task is never both).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use crate::state::TaskStores;
use crate::task::TaskId;

/// One standby task: its stores and the changelogs feeding them.
pub(crate) struct StandbyTask {
    /// Its stores.
    pub stores: TaskStores,
    /// `(store, changelog topic)` of its changelogged RocksDB stores.
    pub changelogs: Vec<(String, String)>,
}

/// The registry's contents.
#[derive(Default)]
pub(crate) struct Inner {
    /// Standby copies kept here.
    pub tasks: BTreeMap<TaskId, StandbyTask>,
    /// Tasks active on this instance: never kept as standbys here.
    pub active: BTreeSet<TaskId>,
    /// Standby copies closed because the placement moved (a rebalance under way), whose
    /// stores stay on disk as fresh as when closed: an active task opening one of them
    /// starts from the standby's copy all the same.
    pub dropped: BTreeSet<TaskId>,
}

/// The instance's standby tasks, shared between the standby thread and the stream threads.
#[derive(Default)]
pub(crate) struct Standbys {
    inner: Mutex<Inner>,
}

impl Standbys {
    /// Runs `f` on the registry under its lock.
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// A stream thread is about to open task `id`: the standby copy (if any) closes, leaving
    /// its directory and changelog position to the active task. True when there was one.
    pub(crate) fn release(&self, id: TaskId) -> bool {
        let released = self.with(|inner| {
            inner.active.insert(id);
            let dropped = inner.dropped.remove(&id);
            inner.tasks.remove(&id).is_some() || dropped
        });
        if released {
            tracing::info!(task = %id, "standby handed over to the active task");
        }
        released
    }

    /// True while task `id` is active on a stream thread of this instance or kept as a
    /// standby here: its directory is in use.
    pub(crate) fn in_use(&self, id: TaskId) -> bool {
        self.with(|inner| inner.active.contains(&id) || inner.tasks.contains_key(&id))
    }

    /// Tasks that stopped being active here may become standbys again.
    pub(crate) fn active_closed(&self, ids: &[TaskId]) {
        self.with(|inner| {
            for id in ids {
                inner.active.remove(id);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standby_dropped_by_a_moving_placement_is_still_handed_over_once() {
        let registry = Standbys::default();
        let id = TaskId {
            sub_topology: 1,
            partition: 3,
        };
        assert!(!registry.release(id), "never a standby here");
        registry.active_closed(&[id]);
        registry.with(|inner| {
            inner.dropped.insert(id);
        });
        assert!(registry.release(id), "its copy stayed on disk");
        assert!(registry.in_use(id));
        registry.active_closed(&[id]);
        assert!(!registry.release(id), "handed over once");
    }
}
