//! Where each snapshot document lives in a snapshot store: every key format in one place.
//!
//! ```text
//! files/<sha256>                                 RocksDB files, shared by every snapshot
//! <app>/savepoints/<id>/tasks/<task>.json        one part per task
//! <app>/savepoints/<id>/manifest.json            written last: the savepoint is complete
//! <app>/checkpoints/<task>/<created>.json        periodic checkpoints of one task
//! ```

use std::fmt::Display;

/// The directory of the stored files every snapshot shares, beside the apps' directories.
pub(crate) const FILES: &str = "files";

/// Stored file `name` (a content hash, or the leftover of an interrupted copy of one).
pub(crate) fn file(name: &str) -> String {
    format!("{FILES}/{name}")
}

/// The directory of app `application_id`'s savepoints.
pub(crate) fn savepoints(application_id: &str) -> String {
    format!("{application_id}/savepoints")
}

/// The key prefix of savepoint `id` of app `application_id`.
pub fn savepoint_key(application_id: &str, id: &str) -> String {
    format!("{}/{id}", savepoints(application_id))
}

/// The manifest of the savepoint at `savepoint` (a [`savepoint_key`]): written last.
pub(crate) fn savepoint_manifest(savepoint: &str) -> String {
    format!("{savepoint}/manifest.json")
}

/// The directory of the task parts of the savepoint at `savepoint` (a [`savepoint_key`]).
pub(crate) fn savepoint_tasks(savepoint: &str) -> String {
    format!("{savepoint}/tasks")
}

/// The part of task `task` of the savepoint at `savepoint` (a [`savepoint_key`]).
pub(crate) fn savepoint_task(savepoint: &str, task: impl Display) -> String {
    format!("{}/{task}.json", savepoint_tasks(savepoint))
}

/// The directory of the checkpoints of every task of app `application_id`.
pub(crate) fn all_checkpoints(application_id: &str) -> String {
    format!("{application_id}/checkpoints")
}

/// The directory of task `task`'s checkpoints.
pub(crate) fn checkpoints(application_id: &str, task: impl Display) -> String {
    format!("{}/{task}", all_checkpoints(application_id))
}

/// The checkpoint taken at `created_ms` in `checkpoints` (a [`checkpoints`] directory):
/// zero-padded so names sort by time.
pub(crate) fn checkpoint(checkpoints: &str, created_ms: i64) -> String {
    format!("{checkpoints}/{created_ms:016}.json")
}

/// Document `name` listed in directory `dir`.
pub(crate) fn listed(dir: &str, name: &str) -> String {
    format!("{dir}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        assert_eq!(file("ab12"), "files/ab12");
        let sp = savepoint_key("app", "sp-1");
        assert_eq!(sp, "app/savepoints/sp-1");
        assert_eq!(savepoint_manifest(&sp), "app/savepoints/sp-1/manifest.json");
        assert_eq!(
            savepoint_task(&sp, "0_3"),
            "app/savepoints/sp-1/tasks/0_3.json"
        );
        let cp = checkpoints("app", "1_0");
        assert_eq!(cp, "app/checkpoints/1_0");
        assert_eq!(
            checkpoint(&cp, 42),
            "app/checkpoints/1_0/0000000000000042.json"
        );
        assert!(
            checkpoint(&cp, 9) < checkpoint(&cp, 10),
            "names sort by time"
        );
    }
}
