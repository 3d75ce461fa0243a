//! Moving a task's RocksDB checkpoint into the snapshot store and back.

use std::collections::HashMap;
use std::path::Path;

use super::manifest::SnapshotFile;
use super::store::{content_hash, SnapshotStore};
use super::SnapshotError;

/// Remembers content hashes of immutable RocksDB files (SST and blob files), keyed by inode,
/// size and modification time: a checkpoint hard-links the live files, so a second snapshot
/// hashes only what is new.
#[derive(Debug, Default)]
pub struct HashCache {
    known: HashMap<(u64, u64, i64), String>,
}

impl HashCache {
    fn hash(&mut self, path: &Path) -> Result<String, SnapshotError> {
        let immutable = path.extension().is_some_and(|e| e == "sst" || e == "blob");
        let key = identity(path);
        if let (true, Some(key)) = (immutable, key) {
            if let Some(hash) = self.known.get(&key) {
                return Ok(hash.clone());
            }
            let hash = content_hash(path)?;
            self.known.insert(key, hash.clone());
            return Ok(hash);
        }
        content_hash(path)
    }
}

#[cfg(unix)]
fn identity(path: &Path) -> Option<(u64, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.ino(),
        m.size(),
        m.mtime_nsec() + m.mtime() * 1_000_000_000,
    ))
}

#[cfg(not(unix))]
fn identity(_path: &Path) -> Option<(u64, u64, i64)> {
    None
}

/// What an upload did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadStats {
    /// Bytes of the snapshot.
    pub total_bytes: u64,
    /// Bytes actually copied (files the store did not hold yet).
    pub copied_bytes: u64,
}

/// Stores every file of `checkpoint` (a RocksDB checkpoint directory) in `store`.
///
/// # Errors
/// A file cannot be read or stored.
pub fn upload(
    store: &dyn SnapshotStore,
    checkpoint: &Path,
    cache: &mut HashCache,
) -> Result<(Vec<SnapshotFile>, UploadStats), SnapshotError> {
    let entries = std::fs::read_dir(checkpoint)
        .map_err(|e| SnapshotError::io(checkpoint.display(), "listing", e))?;
    let mut files = Vec::new();
    let mut stats = UploadStats::default();
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        let blob = cache.hash(&path)?;
        if store.put_file(&blob, &path)? {
            stats.copied_bytes += size;
        }
        stats.total_bytes += size;
        files.push(SnapshotFile { name, blob, size });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((files, stats))
}

/// Replaces `dir` with the files of a snapshot, atomically: the files are fetched and verified
/// into a sibling directory that is renamed into place only when complete, so a failure or a
/// crash mid-download leaves `dir` as it was (or, at worst, absent), never half-written.
///
/// # Errors
/// A name is not plain, a blob is missing, cannot be copied or does not match its hash.
pub fn download(
    store: &dyn SnapshotStore,
    files: &[SnapshotFile],
    dir: &Path,
) -> Result<u64, SnapshotError> {
    let io = |what: &str, e: std::io::Error| SnapshotError::io(dir.display(), what, e);
    // Names come from JSON documents anyone with access to the store could have written:
    // every one must be a plain file name and a content hash before anything is touched.
    for file in files {
        check_file_name(&file.name)?;
        check_blob_name(&file.blob)?;
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = dir.with_file_name(format!("{name}.download-{}", std::process::id()));
    remove_leftovers(dir, &name);
    std::fs::create_dir_all(&staging).map_err(|e| io("creating the download directory", e))?;
    let fetched = fetch_all(store, files, &staging);
    if let Err(e) = fetched {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| io("removing old state", e))?;
    }
    std::fs::rename(&staging, dir).map_err(|e| io("moving the download into place", e))?;
    fetched
}

/// Removes download directories a crashed process left beside `dir`.
fn remove_leftovers(dir: &Path, name: &str) {
    let Some(parent) = dir.parent() else { return };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let prefix = format!("{name}.download-");
    for entry in entries.filter_map(Result::ok) {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Fetches and verifies every file into `dir`; returns the bytes.
fn fetch_all(
    store: &dyn SnapshotStore,
    files: &[SnapshotFile],
    dir: &Path,
) -> Result<u64, SnapshotError> {
    let mut bytes = 0;
    for file in files {
        let local = dir.join(&file.name);
        store.get_file(&file.blob, &local)?;
        let actual = content_hash(&local)?;
        if actual != file.blob {
            return Err(SnapshotError::invalid(
                format!("snapshot file `{}` (blob {})", file.name, file.blob),
                format!("its content hashes to {actual}"),
            ));
        }
        bytes += file.size;
    }
    Ok(bytes)
}

/// Refuses a snapshot file name that is not a plain name inside the task directory.
fn check_file_name(name: &str) -> Result<(), SnapshotError> {
    let plain =
        !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
    if plain {
        Ok(())
    } else {
        Err(SnapshotError::invalid(
            "a snapshot's file list",
            format!("`{name}` is not a plain file name"),
        ))
    }
}

/// Refuses a stored file name that is neither a content hash nor the leftover of an
/// interrupted copy of one (`<hash>.tmp-<pid>` and the like): the only names garbage
/// collection may remove.
pub(crate) fn check_stored_name(name: &str) -> Result<(), SnapshotError> {
    let hash = name.get(..64).unwrap_or(name);
    let rest = name.get(64..).unwrap_or_default();
    check_blob_name(hash)?;
    let leftover = rest.is_empty()
        || (rest.starts_with('.')
            && rest[1..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    if leftover {
        Ok(())
    } else {
        Err(SnapshotError::invalid(
            "a stored file name",
            format!("`{name}` is not a content hash"),
        ))
    }
}

/// Refuses a blob name that is not a SHA-256 content hash (64 lowercase hex digits).
pub(crate) fn check_blob_name(blob: &str) -> Result<(), SnapshotError> {
    let hash = blob.len() == 64
        && blob
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if hash {
        Ok(())
    } else {
        Err(SnapshotError::invalid(
            "a snapshot's file list",
            format!("`{blob}` is not a content hash"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::serde::{I64Serde, StringSerde};
    use crate::snapshot::DirectoryStore;
    use crate::state::{StoreBuilder, TaskStores};

    fn write(stores: &mut TaskStores, from: i64, to: i64, position: i64) {
        let mut view = stores.typed::<String, i64>("counts").unwrap();
        for i in from..to {
            view.put(&format!("key-{i:08}"), &i).unwrap();
        }
        stores
            .apply_committed(&BTreeMap::from([("counts".to_owned(), position)]))
            .unwrap();
    }

    #[test]
    fn a_second_snapshot_copies_only_new_files_and_a_download_reopens_with_its_positions() {
        let dir = tempfile::tempdir().unwrap();
        let defs = [StoreBuilder::rocksdb("counts", StringSerde, I64Serde)];
        let mut stores = TaskStores::open(
            Some(&dir.path().join("db")),
            &defs,
            |s| format!("app-{s}-changelog"),
            &crate::state::RocksMemory::default(),
        )
        .unwrap();
        let store = DirectoryStore::new(dir.path().join("store"));
        let mut cache = HashCache::default();

        write(&mut stores, 0, 20_000, 10);
        stores.checkpoint(&dir.path().join("c1")).unwrap();
        let (_, first) = upload(&store, &dir.path().join("c1"), &mut cache).unwrap();
        assert_eq!(first.copied_bytes, first.total_bytes, "everything is new");

        write(&mut stores, 20_000, 20_100, 11);
        stores.checkpoint(&dir.path().join("c2")).unwrap();
        let (files, second) = upload(&store, &dir.path().join("c2"), &mut cache).unwrap();
        assert!(
            second.copied_bytes * 4 < second.total_bytes,
            "the unchanged SST file is shared: {second:?}"
        );

        let restored = dir.path().join("restored");
        download(&store, &files, &restored).unwrap();
        let mut back = TaskStores::open(
            Some(&restored),
            &defs,
            |s| format!("app-{s}-changelog"),
            &crate::state::RocksMemory::default(),
        )
        .unwrap();
        assert_eq!(back.changelog_position("counts").unwrap(), Some(11));
        let view = back.typed::<String, i64>("counts").unwrap();
        assert_eq!(view.get(&"key-00020099".to_owned()).unwrap(), Some(20_099));
        assert_eq!(view.get(&"key-00000000".to_owned()).unwrap(), Some(0));
    }

    #[test]
    fn planted_names_and_altered_blobs_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirectoryStore::new(dir.path().join("store"));
        let source = dir.path().join("CURRENT");
        std::fs::write(&source, b"MANIFEST-000001\n").unwrap();
        let blob = content_hash(&source).unwrap();
        store.put_file(&blob, &source).unwrap();
        let task = dir.path().join("task");
        for name in ["../escaped", "/tmp/absolute", "..", "sub/dir", ""] {
            let files = [SnapshotFile {
                name: name.to_owned(),
                blob: blob.clone(),
                size: 16,
            }];
            let err = download(&store, &files, &task).unwrap_err();
            assert!(
                err.to_string().contains("not a plain file name"),
                "{name}: {err}"
            );
        }
        assert!(
            !dir.path().join("escaped").exists(),
            "nothing written outside"
        );
        let files = [SnapshotFile {
            name: "CURRENT".to_owned(),
            blob: "../../etc/passwd".to_owned(),
            size: 16,
        }];
        assert!(download(&store, &files, &task)
            .unwrap_err()
            .to_string()
            .contains("not a content hash"));
        assert!(
            !dir.path().join("task").exists(),
            "failed downloads leave nothing behind"
        );
        // A blob whose content no longer matches its name.
        std::fs::write(dir.path().join("store/files").join(&blob), b"tampered").unwrap();
        let files = [SnapshotFile {
            name: "CURRENT".to_owned(),
            blob: blob.clone(),
            size: 16,
        }];
        let err = download(&store, &files, &task).unwrap_err();
        assert!(err.to_string().contains("hashes to"), "{err}");
    }

    #[test]
    fn a_download_that_fails_midway_leaves_the_old_state_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirectoryStore::new(dir.path().join("store"));
        let task = dir.path().join("0_1");
        std::fs::create_dir_all(&task).unwrap();
        std::fs::write(task.join("CURRENT"), b"old state").unwrap();
        let good = dir.path().join("good");
        std::fs::write(&good, b"new file").unwrap();
        let blob = content_hash(&good).unwrap();
        store.put_file(&blob, &good).unwrap();
        let files = [
            SnapshotFile {
                name: "000001.sst".to_owned(),
                blob,
                size: 8,
            },
            SnapshotFile {
                name: "CURRENT".to_owned(),
                blob: "f".repeat(64),
                size: 8,
            },
        ];
        assert!(
            download(&store, &files, &task).is_err(),
            "the second blob is missing"
        );
        assert_eq!(std::fs::read(task.join("CURRENT")).unwrap(), b"old state");
        assert!(!task.join("000001.sst").exists(), "no half-written state");
        let leftovers = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains(".download-"))
            .count();
        assert_eq!(leftovers, 0);
    }
}
