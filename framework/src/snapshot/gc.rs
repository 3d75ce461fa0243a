//! Garbage collection of a snapshot store: removing savepoints, and the stored files no
//! savepoint or checkpoint references any more.
//!
//! Every document of every app in the store is a root: complete savepoints, the task parts
//! of savepoints still being written, and the checkpoints each task keeps. A stored file is
//! removed only when no root names it and it was last written before the grace period
//! began, so a snapshot being uploaded (its files are stored before its document) keeps its
//! files. Stores refresh a file a snapshot reuses once it is older than
//! [`REFRESH_AFTER`](super::store::REFRESH_AFTER), hence the minimum grace period.

use std::collections::BTreeSet;
use std::time::Duration;

use super::manifest::{Manifest, TaskSnapshot};
use super::paths;
use super::store::{get_json, SnapshotStore, REFRESH_AFTER};
use super::SnapshotError;

/// The shortest grace period [`collect_garbage`] accepts: twice [`REFRESH_AFTER`], which leaves
/// an unfinished snapshot at least an hour between reusing a file and writing its document.
pub const MIN_GC_GRACE: Duration = Duration::from_secs(2 * REFRESH_AFTER.as_secs());

/// What a garbage collection found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Documents read as roots.
    pub documents: usize,
    /// Distinct stored files the roots reference.
    pub referenced: usize,
    /// Referenced files the store does not hold (a damaged snapshot; listed, never guessed).
    pub missing: Vec<String>,
    /// Unreferenced files kept because they are younger than the grace period.
    pub recent: usize,
    /// Files removed (or that would be, on a dry run).
    pub removed: usize,
    /// Their bytes.
    pub removed_bytes: u64,
}

/// Removes the stored files of `store` that no document references and that were last
/// written more than `grace` before `now_ms`. With `dry_run`, only reports.
///
/// # Errors
/// `grace` is shorter than [`MIN_GC_GRACE`]; a document cannot be read or decoded (nothing is
/// removed then: a root that cannot be read might reference anything); the store fails.
pub fn collect_garbage(
    store: &dyn SnapshotStore,
    grace: Duration,
    now_ms: i64,
    dry_run: bool,
) -> Result<GcReport, SnapshotError> {
    if grace < MIN_GC_GRACE {
        return Err(SnapshotError::invalid(
            "the garbage collection grace period",
            format!(
                "{} s is shorter than the minimum {} s",
                grace.as_secs(),
                MIN_GC_GRACE.as_secs()
            ),
        ));
    }
    let mut report = GcReport::default();
    let referenced = roots(store, &mut report)?;
    report.referenced = referenced.len();
    let cutoff = now_ms.saturating_sub(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
    let stored = store.list_files()?;
    let held: BTreeSet<&str> = stored.iter().map(|f| f.name.as_str()).collect();
    report.missing = referenced
        .iter()
        .filter(|blob| !held.contains(blob.as_str()))
        .cloned()
        .collect();
    for file in &stored {
        if referenced.contains(&file.name) {
            continue;
        }
        if file.modified_ms > cutoff {
            report.recent += 1;
            continue;
        }
        if !dry_run {
            store.delete_file(&file.name)?;
        }
        report.removed += 1;
        report.removed_bytes += file.size;
    }
    Ok(report)
}

/// Every stored file some document of the store references.
fn roots(
    store: &dyn SnapshotStore,
    report: &mut GcReport,
) -> Result<BTreeSet<String>, SnapshotError> {
    let mut referenced = BTreeSet::new();
    let mut add = |task: &TaskSnapshot| {
        referenced.extend(task.files.iter().map(|f| f.blob.clone()));
    };
    for app in store.list("")? {
        if app == paths::FILES {
            continue;
        }
        let savepoints = paths::savepoints(&app);
        for id in store.list(&savepoints)? {
            let savepoint = paths::savepoint_key(&app, &id);
            let manifest_key = paths::savepoint_manifest(&savepoint);
            if let Some(manifest) = get_json::<Manifest>(store, &manifest_key)? {
                report.documents += 1;
                manifest.tasks.iter().for_each(&mut add);
            }
            let parts = paths::savepoint_tasks(&savepoint);
            for name in store.list(&parts)? {
                let key = paths::listed(&parts, &name);
                if let Some(part) = get_json::<TaskSnapshot>(store, &key)? {
                    report.documents += 1;
                    add(&part);
                }
            }
        }
        for task in store.list(&paths::all_checkpoints(&app))? {
            let dir = paths::checkpoints(&app, &task);
            for name in store.list(&dir)? {
                let key = paths::listed(&dir, &name);
                if let Some(part) = get_json::<TaskSnapshot>(store, &key)? {
                    report.documents += 1;
                    add(&part);
                }
            }
        }
    }
    Ok(referenced)
}

/// Removes savepoint `id` of `application_id`: its manifest first (from then on it is not
/// listed and cannot be restored), then its task parts. Its files go at the next
/// [`collect_garbage`] unless another snapshot shares them.
///
/// # Errors
/// The savepoint does not exist, or the store fails.
pub fn delete_savepoint(
    store: &dyn SnapshotStore,
    application_id: &str,
    id: &str,
) -> Result<usize, SnapshotError> {
    let savepoint = paths::savepoint_key(application_id, id);
    let parts = paths::savepoint_tasks(&savepoint);
    let names = store.list(&parts)?;
    let manifest = paths::savepoint_manifest(&savepoint);
    if names.is_empty() && store.get_document(&manifest)?.is_none() {
        return Err(SnapshotError::Missing(format!(
            "savepoint {} in {}",
            savepoint,
            store.describe()
        )));
    }
    store.delete_document(&manifest)?;
    for name in &names {
        store.delete_document(&paths::listed(&parts, name))?;
    }
    Ok(names.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::store::content_hash;
    use crate::snapshot::{put_json, DirectoryStore, SnapshotFile};

    const HOUR_MS: i64 = 3_600_000;

    fn part(task: &str, blobs: &[&str]) -> TaskSnapshot {
        TaskSnapshot {
            task: task.to_owned(),
            epoch: None,
            files: blobs
                .iter()
                .map(|b| SnapshotFile {
                    name: format!("{}.sst", &b[..8]),
                    blob: (*b).to_owned(),
                    size: 4,
                })
                .collect(),
            stores: Vec::new(),
            inputs: Vec::new(),
            created_ms: 0,
        }
    }

    #[test]
    fn only_unreferenced_files_older_than_the_grace_period_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirectoryStore::new(dir.path().join("store"));
        let mut blobs = Vec::new();
        for content in ["savepoint", "checkpoint", "partial", "orphan", "shared"] {
            let local = dir.path().join(content);
            std::fs::write(&local, content).unwrap();
            let blob = content_hash(&local).unwrap();
            store.put_file(&blob, &local).unwrap();
            blobs.push(blob);
        }
        let [sp, cp, partial, orphan, shared] = [0, 1, 2, 3, 4].map(|i| blobs[i].as_str());
        let savepoint = paths::savepoint_key("app", "sp-1");
        let manifest = Manifest {
            format: crate::snapshot::MANIFEST_FORMAT,
            id: "sp-1".to_owned(),
            application_id: "app".to_owned(),
            topology_fingerprint: String::new(),
            created_ms: 0,
            tasks: vec![part("0_0", &[sp, shared])],
        };
        put_json(&store, &paths::savepoint_manifest(&savepoint), &manifest).unwrap();
        put_json(
            &store,
            &paths::savepoint_task(&paths::savepoint_key("app", "sp-2"), "0_0"),
            &part("0_0", &[partial]),
        )
        .unwrap();
        let checkpoints = paths::checkpoints("other-app", "1_0");
        put_json(
            &store,
            &paths::checkpoint(&checkpoints, 5),
            &part("1_0", &[cp, shared]),
        )
        .unwrap();

        let now = crate::record::wall_clock_ms();
        let too_short = collect_garbage(&store, Duration::from_secs(60), now, false);
        assert!(too_short.is_err(), "a grace period under the minimum");
        let grace = MIN_GC_GRACE;
        let fresh = collect_garbage(&store, grace, now, false).unwrap();
        assert_eq!(fresh.removed, 0, "everything is recent: {fresh:?}");
        assert_eq!(fresh.recent, 1);
        assert_eq!(fresh.referenced, 4);
        assert_eq!(fresh.documents, 3);

        let later = now + 3 * HOUR_MS;
        let dry = collect_garbage(&store, grace, later, true).unwrap();
        assert_eq!((dry.removed, dry.removed_bytes), (1, 6));
        assert_eq!(
            store.list_files().unwrap().len(),
            5,
            "a dry run removes nothing"
        );
        let done = collect_garbage(&store, grace, later, false).unwrap();
        assert_eq!(done.removed, 1);
        let left: Vec<String> = store
            .list_files()
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect();
        assert!(!left.contains(&orphan.to_owned()), "{left:?}");
        assert_eq!(left.len(), 4);

        assert_eq!(delete_savepoint(&store, "app", "sp-2").unwrap(), 1);
        assert!(delete_savepoint(&store, "app", "sp-9").is_err(), "absent");
        let after = collect_garbage(&store, grace, later, false).unwrap();
        assert_eq!(
            after.removed, 1,
            "the partial savepoint's file goes with it"
        );
        assert!(after.missing.is_empty());

        // A damaged root stops the collection before anything is removed.
        store
            .put_document(&paths::checkpoint(&checkpoints, 6), b"not json")
            .unwrap();
        assert!(collect_garbage(&store, grace, later + 10 * HOUR_MS, false).is_err());
        assert_eq!(store.list_files().unwrap().len(), 3);
    }
}
