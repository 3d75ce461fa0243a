//! What a snapshot records: per task its files, stores and offsets; per savepoint the
//! manifest that lists every task, and the check that a new version can use it.

use serde::{Deserialize, Serialize};

/// The manifest format this version writes and reads.
pub const MANIFEST_FORMAT: u32 = 1;

/// A store as a snapshot recorded it: enough to tell whether a new version can read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreIdentity {
    /// The store's name.
    pub name: String,
    /// `rocksdb` or `in_memory`.
    pub kind: String,
    /// The key serde's format (for example `utf8`, `json:<type>`).
    pub key_format: String,
    /// The value serde's format.
    pub value_format: String,
    /// The changelog offset the data corresponds to (replay starts there).
    pub changelog_position: Option<i64>,
}

/// One file of a task's RocksDB checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    /// File name inside the checkpoint directory.
    pub name: String,
    /// Content hash: the blob in the snapshot store.
    pub blob: String,
    /// Size in bytes.
    pub size: u64,
}

/// The next offset to read of one input partition of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputOffset {
    /// Topic as the app reads it.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Next offset to read.
    pub offset: i64,
    /// True for the app's own repartition topics.
    pub internal: bool,
    /// The task's stream time at the cut (absent before its first record, and in savepoints
    /// of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_time: Option<i64>,
}

/// One task's part of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSnapshot {
    /// The task (`<sub-topology>_<partition>`).
    pub task: String,
    /// The state timeline the data belongs to (set after a savepoint restore).
    pub epoch: Option<String>,
    /// The checkpoint's files.
    pub files: Vec<SnapshotFile>,
    /// The task's stores.
    pub stores: Vec<StoreIdentity>,
    /// Input positions at the snapshot (savepoints only).
    pub inputs: Vec<InputOffset>,
    /// Milliseconds since the epoch.
    pub created_ms: i64,
}

impl TaskSnapshot {
    /// Bytes of state the snapshot holds.
    pub fn size(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// A complete savepoint: written only once every task of the app has written its part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_FORMAT`].
    pub format: u32,
    /// Savepoint id.
    pub id: String,
    /// The app it was taken from.
    pub application_id: String,
    /// Fingerprint of the topology's description (informational: compatibility is decided
    /// store by store).
    pub topology_fingerprint: String,
    /// Milliseconds since the epoch.
    pub created_ms: i64,
    /// Every task of the app.
    pub tasks: Vec<TaskSnapshot>,
}

impl Manifest {
    /// Total bytes of state.
    pub fn size(&self) -> u64 {
        self.tasks.iter().map(TaskSnapshot::size).sum()
    }

    /// The stores the savepoint holds (from its first task that has each).
    pub fn stores(&self) -> Vec<StoreIdentity> {
        let mut out: Vec<StoreIdentity> = Vec::new();
        for task in &self.tasks {
            for store in &task.stores {
                if !out.iter().any(|s| s.name == store.name) {
                    out.push(store.clone());
                }
            }
        }
        out
    }
}

/// Whether the current serde of a store's key (`true`) or value reads data written in a saved
/// format: `(store, key, written format)` → [`Serde::reads_format`](crate::serde::Serde::reads_format)'s answer.
pub type ReadsFormat<'a> = dyn Fn(&str, bool, &str) -> Option<Result<(), String>> + 'a;

/// Decides whether stores saved as `saved` can be loaded by a version whose stores are
/// `current`. Returns notes on the accepted changes, or every incompatible change.
///
/// Accepted: added stores (start empty), removed stores (their data is dropped), unchanged
/// formats, formats the current serde says it reads (`reads(store, key, written format)`,
/// from [`Serde::reads_format`](crate::serde::Serde::reads_format): an Avro schema that
/// evolved compatibly, say), and JSON state whose Rust type changed (JSON evolves through
/// serde defaults). Refused: a store whose kind or whose key or value format changed
/// otherwise.
///
/// # Errors
/// One message per incompatible store, naming the store and the change.
pub fn compatibility(
    saved: &[StoreIdentity],
    current: &[StoreIdentity],
    reads: &ReadsFormat<'_>,
) -> Result<Vec<String>, Vec<String>> {
    let mut notes = Vec::new();
    let mut problems = Vec::new();
    for now in current {
        let Some(before) = saved.iter().find(|s| s.name == now.name) else {
            notes.push(format!("store `{}` is new and starts empty", now.name));
            continue;
        };
        if before.kind != now.kind {
            problems.push(format!(
                "store `{}` changed kind from {} to {}",
                now.name, before.kind, now.kind
            ));
        }
        for (what, was, is) in [
            ("key", &before.key_format, &now.key_format),
            ("value", &before.value_format, &now.value_format),
        ] {
            if was == is {
                continue;
            }
            match reads(&now.name, what == "key", was) {
                Some(Ok(())) => {
                    notes.push(format!(
                        "store `{}`: its {what} format changed and the new serde reads the old data",
                        now.name
                    ));
                    continue;
                }
                Some(Err(why)) => {
                    problems.push(format!(
                        "store `{}`: its {what} serde cannot read the saved data: {why}",
                        now.name
                    ));
                    continue;
                }
                None => {}
            }
            if was.starts_with("json:") && is.starts_with("json:") {
                notes.push(format!(
                    "store `{}`: {what} JSON type changed from {was} to {is}; old values must still decode",
                    now.name
                ));
            } else {
                problems.push(format!(
                    "store `{}` changed its {what} format from `{was}` to `{is}`",
                    now.name
                ));
            }
        }
    }
    for before in saved {
        if !current.iter().any(|s| s.name == before.name) {
            notes.push(format!(
                "store `{}` is no longer used; its saved state is dropped",
                before.name
            ));
        }
    }
    if problems.is_empty() {
        Ok(notes)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(name: &str, key: &str, value: &str) -> StoreIdentity {
        StoreIdentity {
            name: name.to_owned(),
            kind: "rocksdb".to_owned(),
            key_format: key.to_owned(),
            value_format: value.to_owned(),
            changelog_position: Some(3),
        }
    }

    #[test]
    fn added_removed_and_json_evolved_stores_are_accepted() {
        let saved = [
            store("counts", "utf8", "i64-be"),
            store("old", "utf8", "utf8"),
            store("profiles", "utf8", "json:app::ProfileV1"),
        ];
        let current = [
            store("counts", "utf8", "i64-be"),
            store("profiles", "utf8", "json:app::ProfileV2"),
            store("fresh", "utf8", "utf8"),
        ];
        let notes = compatibility(&saved, &current, &|_, _, _| None).unwrap();
        assert!(notes.iter().any(|n| n.contains("`fresh` is new")));
        assert!(notes.iter().any(|n| n.contains("`old` is no longer used")));
        assert!(notes.iter().any(|n| n.contains("ProfileV2")));
    }

    #[test]
    fn a_changed_format_is_refused_naming_the_store_and_the_change() {
        let saved = [store("counts", "utf8", "i64-be")];
        let current = [StoreIdentity {
            kind: "in_memory".to_owned(),
            ..store("counts", "utf8", "i32-be")
        }];
        let problems = compatibility(&saved, &current, &|_, _, _| None).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("changed kind from rocksdb to in_memory"));
        assert!(problems[1]
            .contains("store `counts` changed its value format from `i64-be` to `i32-be`"));
    }

    #[test]
    fn a_serde_that_reads_the_saved_format_decides_over_equality() {
        let saved = [
            store("orders", "utf8", "avro:v1"),
            store("totals", "utf8", "avro:v2"),
        ];
        let current = [
            store("orders", "utf8", "avro:v2"),
            store("totals", "utf8", "avro:v3"),
        ];
        let reads = |store: &str, key: bool, written: &str| {
            assert!(!key, "keys are unchanged");
            match (store, written) {
                ("orders", "avro:v1") => Some(Ok(())),
                ("totals", "avro:v2") => Some(Err("field `customer` has no default".to_owned())),
                _ => None,
            }
        };
        let problems = compatibility(&saved, &current, &reads).unwrap_err();
        assert_eq!(
            problems,
            ["store `totals`: its value serde cannot read the saved data: field `customer` has no default"]
        );
        let notes = compatibility(&saved[..1], &current[..1], &reads).unwrap();
        assert_eq!(
            notes,
            ["store `orders`: its value format changed and the new serde reads the old data"]
        );
    }
}
