//! The instance's claim on its state directory: an exclusive lock and a stable instance id.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::RuntimeError;

/// The locked state directory of one app instance (`<state.dir>/<application.id>`).
#[derive(Debug)]
pub(crate) struct InstanceDir {
    root: PathBuf,
    instance_id: String,
    /// Held for the instance's lifetime; the OS releases it if the process dies.
    _lock: File,
}

impl InstanceDir {
    /// Locks the directory (failing if another live instance holds it) and reads the instance
    /// id kept there, writing `configured` or a new random id on first use.
    pub(crate) fn claim(
        state_dir: &Path,
        application_id: &str,
        configured: Option<&str>,
    ) -> Result<Self, RuntimeError> {
        let root = state_dir.join(application_id);
        let io = |what: &'static str, path: &Path, source: std::io::Error| RuntimeError::StateDir {
            what,
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&root).map_err(|e| io("creating", &root, e))?;
        let lock_path = root.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io("opening", &lock_path, e))?;
        lock.try_lock().map_err(|_| RuntimeError::StateDirTaken {
            path: root.display().to_string(),
        })?;
        let id_path = root.join("instance-id");
        let mut stored = String::new();
        if let Ok(mut f) = File::open(&id_path) {
            f.read_to_string(&mut stored)
                .map_err(|e| io("reading", &id_path, e))?;
        }
        let stored = stored.trim().to_owned();
        let instance_id = match configured {
            Some(id) => id.to_owned(),
            None if !stored.is_empty() => stored.clone(),
            None => random_id(),
        };
        if instance_id != stored {
            let tmp = root.join("instance-id.tmp");
            let mut f = File::create(&tmp).map_err(|e| io("writing", &tmp, e))?;
            f.write_all(instance_id.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(|e| io("writing", &tmp, e))?;
            std::fs::rename(&tmp, &id_path).map_err(|e| io("renaming", &id_path, e))?;
        }
        Ok(InstanceDir {
            root,
            instance_id,
            _lock: lock,
        })
    }

    /// The locked directory (`<state.dir>/<application.id>`).
    pub(crate) fn dir(&self) -> &Path {
        &self.root
    }

    /// The instance id.
    pub(crate) fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// A scratch directory for local checkpoints before they are published.
    pub(crate) fn scratch_dir(&self, name: &str) -> PathBuf {
        self.root.join("scratch").join(name)
    }

    /// The directory holding task `task`'s stores.
    pub(crate) fn task_dir(&self, task: &str) -> PathBuf {
        self.root.join("tasks").join(task)
    }
}

/// 64 random-enough bits from the clock, the process id and the address-space layout.
fn random_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_survives_restarts_and_the_lock_excludes_a_second_instance() {
        let dir = tempfile::tempdir().unwrap();
        let first = InstanceDir::claim(dir.path(), "app", None).unwrap();
        let id = first.instance_id().to_owned();
        let second = InstanceDir::claim(dir.path(), "app", None).unwrap_err();
        assert!(
            second.to_string().contains("another running instance"),
            "{second}"
        );
        drop(first);
        let again = InstanceDir::claim(dir.path(), "app", None).unwrap();
        assert_eq!(again.instance_id(), id);
        assert!(again.task_dir("0_1").ends_with("app/tasks/0_1"));
    }
}
