//! Removes the directories of tasks this instance has not owned (as active or standby) for
//! `state.cleanup_delay_ms`, and leftovers of interrupted downloads, so state of partitions
//! that moved away for good does not fill the disk.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::shared_state::Shared;
use super::RuntimeError;
use crate::task::TaskId;

/// The task a directory name (`<sub-topology>_<partition>`) stands for.
fn task_of(name: &str) -> Option<TaskId> {
    let (sub, partition) = name.split_once('_')?;
    Some(TaskId {
        sub_topology: sub.parse().ok()?,
        partition: partition.parse().ok()?,
    })
}

/// Starts the janitor thread; it stops when `shutdown` is set.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    shutdown: Arc<AtomicBool>,
) -> Result<Option<JoinHandle<()>>, RuntimeError> {
    let Some(delay) = shared.config.state.cleanup_delay else {
        return Ok(None);
    };
    let every = (delay / 2).clamp(Duration::from_millis(100), Duration::from_secs(60));
    std::thread::Builder::new()
        .name("eddy-janitor".to_owned())
        .spawn(move || {
            let tasks = shared.instance.task_dir("");
            let mut unowned_since: HashMap<String, Instant> = HashMap::new();
            while !shutdown.load(Ordering::Relaxed) {
                sweep(&shared, &tasks, delay, &mut unowned_since);
                crate::backoff::pause_unless(&shutdown, every);
            }
        })
        .map(Some)
        .map_err(|source| RuntimeError::Spawn {
            what: "janitor",
            source,
        })
}

/// One pass: notes when each directory was first seen unowned and removes those unowned for
/// longer than `delay`.
fn sweep(
    shared: &Shared,
    tasks: &Path,
    delay: Duration,
    unowned_since: &mut HashMap<String, Instant>,
) {
    let Ok(entries) = std::fs::read_dir(tasks) else {
        return;
    };
    let mut seen = Vec::new();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let owner = match task_of(&name) {
            Some(id) => Some(id),
            None if name.contains(".download-") => None,
            None => continue, // not ours to judge
        };
        if owner.is_some_and(|id| shared.standbys.in_use(id)) {
            unowned_since.remove(&name);
            continue;
        }
        seen.push(name.clone());
        let since = *unowned_since
            .entry(name.clone())
            .or_insert_with(Instant::now);
        if since.elapsed() < delay {
            continue;
        }
        // Taken like an opener takes it, so no one opens the directory while it goes.
        let lock = owner.map(|id| shared.task_locks.of(id));
        let _held = lock
            .as_ref()
            .map(|l| l.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        if owner.is_some_and(|id| shared.standbys.in_use(id)) {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => {
                tracing::info!(directory = name, unowned_for = ?since.elapsed(), "removed the state of a task this instance no longer owns")
            }
            Err(e) => {
                tracing::warn!(directory = name, error = %e, "cannot remove the state of an unowned task")
            }
        }
        unowned_since.remove(&name);
    }
    unowned_since.retain(|name, _| seen.contains(name));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_directory_names_parse_and_others_do_not() {
        assert_eq!(
            task_of("1_12"),
            Some(TaskId {
                sub_topology: 1,
                partition: 12
            })
        );
        assert_eq!(task_of("ops-address"), None);
        assert_eq!(task_of("1_2.download-77"), None);
        assert_eq!(task_of("x_1"), None);
    }
}
