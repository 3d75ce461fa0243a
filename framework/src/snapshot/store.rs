//! Where snapshots live: content-addressed files and small JSON documents, behind a trait
//! the directory store and the S3 store implement.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::{paths, SnapshotError};

/// A stored file is refreshed (its modification time set to now) when a snapshot reuses it
/// and it is older than this, so garbage collection, which spares files younger than its
/// grace period, never removes a file an unfinished snapshot has just reused. The grace
/// period must be longer: see [`MIN_GC_GRACE`](super::gc::MIN_GC_GRACE).
pub const REFRESH_AFTER: Duration = Duration::from_secs(3600);

/// One stored file, as garbage collection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredFile {
    /// Its name under `files/`: a content hash, or the leftover of an interrupted copy.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Last modification, milliseconds since the epoch.
    pub modified_ms: i64,
}

/// A place to keep snapshot files and documents.
///
/// Files are content-addressed (`files/<sha256>`), so every snapshot that holds the same
/// RocksDB file shares one copy: a second snapshot of a slowly changing store copies only
/// the files written since the first. Documents (manifests, task parts) are small and are
/// written atomically: a reader sees the whole document or none.
pub trait SnapshotStore: Send + Sync {
    /// Stores the file at `local` under its content hash `blob` unless that blob is already
    /// present (then refreshes it when it is older than [`REFRESH_AFTER`]). Returns true when
    /// it copied bytes.
    ///
    /// # Errors
    /// The file cannot be read or the store cannot be written.
    fn put_file(&self, blob: &str, local: &Path) -> Result<bool, SnapshotError>;

    /// Copies blob `blob` to `local`.
    ///
    /// # Errors
    /// The blob is missing or cannot be copied.
    fn get_file(&self, blob: &str, local: &Path) -> Result<(), SnapshotError>;

    /// Writes document `key` atomically.
    ///
    /// # Errors
    /// The store cannot be written.
    fn put_document(&self, key: &str, bytes: &[u8]) -> Result<(), SnapshotError>;

    /// Reads document `key`; `None` when it does not exist.
    ///
    /// # Errors
    /// The document exists but cannot be read.
    fn get_document(&self, key: &str) -> Result<Option<Vec<u8>>, SnapshotError>;

    /// Removes document `key` (nothing when it does not exist).
    ///
    /// # Errors
    /// The document exists but cannot be removed.
    fn delete_document(&self, key: &str) -> Result<(), SnapshotError>;

    /// The names directly under `prefix` (one level: documents and folders), sorted; `""`
    /// lists the top level.
    ///
    /// # Errors
    /// The store cannot be listed.
    fn list(&self, prefix: &str) -> Result<Vec<String>, SnapshotError>;

    /// Every stored file under `files/`.
    ///
    /// # Errors
    /// The store cannot be listed.
    fn list_files(&self) -> Result<Vec<StoredFile>, SnapshotError>;

    /// Removes stored file `name` (a [`StoredFile::name`]); nothing when it does not exist.
    ///
    /// # Errors
    /// The name is not one the store writes, or the file cannot be removed.
    fn delete_file(&self, name: &str) -> Result<(), SnapshotError>;

    /// Where the store is.
    fn location(&self) -> super::StoreLocation;

    /// Where the store is, for messages.
    fn describe(&self) -> String {
        self.location().to_string()
    }
}

/// A snapshot store in a local (or mounted) directory.
#[derive(Debug, Clone)]
pub struct DirectoryStore {
    root: PathBuf,
}

impl DirectoryStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirectoryStore { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blob_path(&self, blob: &str) -> Result<PathBuf, SnapshotError> {
        super::files::check_blob_name(blob)?;
        Ok(self.root.join(paths::file(blob)))
    }

    /// The path of document (or prefix) `key`, refused unless it is a relative path of
    /// plain names: keys are built from ids that callers and control messages provide.
    fn document_path(&self, key: &str) -> Result<PathBuf, SnapshotError> {
        let relative = Path::new(key);
        let plain = relative
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain || key.is_empty() {
            return Err(SnapshotError::invalid(
                format!("snapshot store key `{key}`"),
                "not a relative path of plain names".to_owned(),
            ));
        }
        Ok(self.root.join(relative))
    }
}

fn io(path: &Path, what: &str, e: std::io::Error) -> SnapshotError {
    SnapshotError::io(path.display(), what, e)
}

/// Copies `from` to `to` through a temporary file renamed into place, so a crash never
/// leaves a partial file under the final name.
fn copy_atomically(from: &Path, to: &Path) -> Result<(), SnapshotError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io(parent, "creating", e))?;
    }
    let tmp = to.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::copy(from, &tmp).map_err(|e| io(from, "copying", e))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(&tmp, "syncing", e))?;
    std::fs::rename(&tmp, to).map_err(|e| io(to, "renaming", e))
}

impl SnapshotStore for DirectoryStore {
    fn put_file(&self, blob: &str, local: &Path) -> Result<bool, SnapshotError> {
        let target = self.blob_path(blob)?;
        if let Ok(meta) = std::fs::metadata(&target) {
            let stale = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > REFRESH_AFTER);
            if stale {
                std::fs::File::options()
                    .write(true)
                    .open(&target)
                    .and_then(|f| f.set_modified(SystemTime::now()))
                    .map_err(|e| io(&target, "refreshing", e))?;
            }
            return Ok(false);
        }
        copy_atomically(local, &target)?;
        Ok(true)
    }

    fn get_file(&self, blob: &str, local: &Path) -> Result<(), SnapshotError> {
        let source = self.blob_path(blob)?;
        if !source.exists() {
            return Err(SnapshotError::Missing(format!(
                "file {} (blob {blob})",
                source.display()
            )));
        }
        copy_atomically(&source, local)
    }

    fn put_document(&self, key: &str, bytes: &[u8]) -> Result<(), SnapshotError> {
        let path = self.document_path(key)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, "creating", e))?;
        }
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, "creating", e))?;
        f.write_all(bytes)
            .and_then(|()| f.sync_all())
            .map_err(|e| io(&tmp, "writing", e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, "renaming", e))
    }

    fn get_document(&self, key: &str) -> Result<Option<Vec<u8>>, SnapshotError> {
        let path = self.document_path(key)?;
        match std::fs::File::open(&path) {
            Ok(mut f) => {
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes)
                    .map_err(|e| io(&path, "reading", e))?;
                Ok(Some(bytes))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path, "opening", e)),
        }
    }

    fn delete_document(&self, key: &str) -> Result<(), SnapshotError> {
        let path = self.document_path(key)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path, "removing", e)),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, SnapshotError> {
        let dir = if prefix.is_empty() {
            self.root.clone()
        } else {
            self.document_path(prefix)?
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir, "listing", e)),
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !n.contains(".tmp-"))
            .collect();
        names.sort();
        Ok(names)
    }

    fn list_files(&self) -> Result<Vec<StoredFile>, SnapshotError> {
        let dir = self.root.join(paths::FILES);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir, "listing", e)),
        };
        let mut files = Vec::new();
        for entry in entries.filter_map(Result::ok) {
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let modified_ms = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            files.push(StoredFile {
                name: entry.file_name().to_string_lossy().into_owned(),
                size: meta.len(),
                modified_ms,
            });
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    fn delete_file(&self, name: &str) -> Result<(), SnapshotError> {
        super::files::check_stored_name(name)?;
        let path = self.root.join(paths::file(name));
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path, "removing", e)),
        }
    }

    fn location(&self) -> super::StoreLocation {
        super::StoreLocation::Directory(self.root.clone())
    }
}

/// Writes `value` as the JSON document `key`.
///
/// # Errors
/// The value cannot be encoded or the store cannot be written.
pub(crate) fn put_json<T: serde::Serialize>(
    store: &dyn SnapshotStore,
    key: &str,
    value: &T,
) -> Result<(), SnapshotError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| SnapshotError::undecodable(key, e))?;
    store.put_document(key, &bytes)
}

/// Reads the JSON document `key`; `None` when it does not exist.
///
/// # Errors
/// [`SnapshotError::Corrupt`] when it does not decode; I/O errors of the store.
pub(crate) fn get_json<T: serde::de::DeserializeOwned>(
    store: &dyn SnapshotStore,
    key: &str,
) -> Result<Option<T>, SnapshotError> {
    let Some(bytes) = store.get_document(key)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| SnapshotError::undecodable(key, e))
}

/// The SHA-256 of the file at `path`, in hex.
///
/// # Errors
/// The file cannot be read.
pub fn content_hash(path: &Path) -> Result<String, SnapshotError> {
    let mut f = std::fs::File::open(path).map_err(|e| io(path, "opening", e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0_u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| io(path, "reading", e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_stored_once_per_content_and_documents_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirectoryStore::new(dir.path().join("store"));
        let a = dir.path().join("a.sst");
        std::fs::write(&a, b"same bytes").unwrap();
        let b = dir.path().join("b.sst");
        std::fs::write(&b, b"same bytes").unwrap();
        let hash = content_hash(&a).unwrap();
        assert_eq!(hash, content_hash(&b).unwrap());
        assert!(store.put_file(&hash, &a).unwrap(), "first copy");
        assert!(
            !store.put_file(&hash, &b).unwrap(),
            "same content is shared"
        );
        let back = dir.path().join("back");
        store.get_file(&hash, &back).unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), b"same bytes");
        let absent = "0".repeat(64);
        let missing = store.get_file(&absent, &back).unwrap_err();
        assert!(
            missing.to_string().contains(&format!("blob {absent}")),
            "{missing}"
        );
        let planted = store.get_document("../outside.json").unwrap_err();
        assert!(
            planted.to_string().contains("not a relative path"),
            "{planted}"
        );
        assert!(store.put_document("/abs/doc.json", b"{}").is_err());

        store
            .put_document("app/savepoints/s1/manifest.json", b"{}")
            .unwrap();
        assert_eq!(
            store
                .get_document("app/savepoints/s1/manifest.json")
                .unwrap(),
            Some(b"{}".to_vec())
        );
        assert_eq!(store.get_document("app/nothing").unwrap(), None);
        assert_eq!(store.list("app/savepoints").unwrap(), vec!["s1".to_owned()]);
        assert!(store.list("none").unwrap().is_empty());
        assert_eq!(store.list("").unwrap(), vec!["app", "files"]);
    }

    #[test]
    fn a_reused_old_file_is_refreshed_so_garbage_collection_spares_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirectoryStore::new(dir.path().join("store"));
        let local = dir.path().join("000001.sst");
        std::fs::write(&local, b"sst").unwrap();
        let blob = content_hash(&local).unwrap();
        store.put_file(&blob, &local).unwrap();
        let stored = dir.path().join("store/files").join(&blob);
        let old = SystemTime::now() - 2 * REFRESH_AFTER;
        std::fs::File::options()
            .write(true)
            .open(&stored)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let listed = store.list_files().unwrap();
        let before = listed[0].modified_ms;
        assert!(!store.put_file(&blob, &local).unwrap(), "not copied again");
        let after = store.list_files().unwrap()[0].modified_ms;
        assert!(
            after - before >= i64::try_from(REFRESH_AFTER.as_millis()).unwrap(),
            "refreshed: {before} -> {after}"
        );
        assert!(store.delete_file("../escape").is_err());
        store.delete_file(&blob).unwrap();
        assert!(store.list_files().unwrap().is_empty());
    }
}
