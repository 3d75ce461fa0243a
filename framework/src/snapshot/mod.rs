//! Snapshots of task state (checkpoints and savepoints): the snapshot store, manifests, the
//! control topic, and the savepoint coordinator the `eddy` tool runs.
//!
//! The layout of a snapshot store (a directory, or a prefix in an S3 bucket) is in [`paths`].

mod control;
mod files;
mod gc;
mod location;
mod manifest;
pub(crate) mod paths;
#[cfg(feature = "s3")]
mod s3;
mod savepoint;
mod store;

pub(crate) use control::{control_topic, ControlChannel, ControlMessage};
pub(crate) use files::{download, upload, HashCache};
pub use gc::{collect_garbage, delete_savepoint, GcReport, MIN_GC_GRACE};
pub use location::{S3Settings, StoreLocation};
pub use manifest::{
    compatibility, InputOffset, Manifest, ReadsFormat, SnapshotFile, StoreIdentity, TaskSnapshot,
    MANIFEST_FORMAT,
};
pub use paths::savepoint_key;
#[cfg(feature = "s3")]
pub use s3::S3Store;
pub use savepoint::{
    create_savepoint, create_savepoint_retrying, list_savepoints, read_manifest, SavepointLocation,
};
pub use store::{content_hash, DirectoryStore, SnapshotStore, StoredFile, REFRESH_AFTER};
pub(crate) use store::{get_json, put_json};

use crate::kafka::KafkaError;
use crate::ErrorAction;

/// A snapshot could not be written, found or used.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A file or directory of the store or the state could not be used.
    #[error("{path}: {}", caused(message, source))]
    Io {
        /// The path.
        path: String,
        /// What failed.
        message: String,
        /// The underlying error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// The store could not be reached or refused a request (after the client's retries).
    #[error("snapshot store {store}: {}", caused(message, source))]
    Unavailable {
        /// The store's location.
        store: String,
        /// What failed.
        message: String,
        /// The store client's error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// Something the snapshot refers to does not exist.
    #[error("missing {0}")]
    Missing(String),
    /// A document could not be decoded, or names something it may not.
    #[error("{what} cannot be read: {}", caused(message, source))]
    Corrupt {
        /// What was being read.
        what: String,
        /// What is wrong with it (empty when the source says it all).
        message: String,
        /// The decoder's error, when there is one.
        #[source]
        source: Option<Cause>,
    },
    /// Kafka failed.
    #[error("{what}: {source}")]
    Kafka {
        /// What was being done.
        what: String,
        /// The client error.
        #[source]
        source: KafkaError,
    },
    /// The app did not answer in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// No instance of the app is running, so no savepoint can be taken.
    #[error("no instance of `{0}` is running")]
    NotRunning(String),
    /// A savepoint failed; the app resumed without it.
    #[error("savepoint {id} failed: {reason}")]
    Failed {
        /// Savepoint id.
        id: String,
        /// Why.
        reason: String,
    },
    /// The savepoint cannot be used by this version of the app.
    #[error("savepoint {path} cannot be used:\n  - {}", problems.join("\n  - "))]
    Incompatible {
        /// The savepoint.
        path: String,
        /// Every problem found.
        problems: Vec<String>,
    },
}

/// The error underneath a [`SnapshotError`], kept as its source.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// `message: source`, or either alone: the text of an error that keeps its source.
fn caused(message: &str, source: &Option<Cause>) -> String {
    match (message.is_empty(), source) {
        (_, None) => message.to_owned(),
        (true, Some(source)) => source.to_string(),
        (false, Some(source)) => format!("{message}: {source}"),
    }
}

impl SnapshotError {
    /// [`SnapshotError::Io`] at `path` while doing `what`, caused by `source`.
    pub(crate) fn io(
        path: impl std::fmt::Display,
        what: impl Into<String>,
        source: impl Into<Cause>,
    ) -> Self {
        SnapshotError::Io {
            path: path.to_string(),
            message: what.into(),
            source: Some(source.into()),
        }
    }

    /// [`SnapshotError::Corrupt`]: `what` does not decode, as `source` says.
    pub(crate) fn undecodable(what: impl Into<String>, source: impl Into<Cause>) -> Self {
        SnapshotError::Corrupt {
            what: what.into(),
            message: String::new(),
            source: Some(source.into()),
        }
    }

    /// [`SnapshotError::Corrupt`]: `what` is wrong in a way `message` says.
    pub(crate) fn invalid(what: impl Into<String>, message: impl Into<String>) -> Self {
        SnapshotError::Corrupt {
            what: what.into(),
            message: message.into(),
            source: None,
        }
    }

    /// What to do about it: timeouts, failed savepoints and an unreachable store may be
    /// retried; the rest needs an operator.
    pub fn action(&self) -> ErrorAction {
        match self {
            SnapshotError::Timeout(_)
            | SnapshotError::Failed { .. }
            | SnapshotError::Unavailable { .. } => ErrorAction::Retry,
            SnapshotError::Kafka { source, .. } => crate::kafka::classify(source),
            _ => ErrorAction::Fatal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SnapshotError;
    use std::error::Error;

    /// An error keeps what it was caused by as its source, and its text still says it once.
    #[test]
    fn errors_keep_their_cause_and_say_it_once() {
        let cause = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = SnapshotError::io("/snap/a", "reading", cause);
        assert_eq!(e.to_string(), "/snap/a: reading: no such file");
        let source = e.source().map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("no such file"));

        let Err(decoding) = serde_json::from_str::<u32>("x") else {
            panic!("`x` decoded as a number");
        };
        let e = SnapshotError::undecodable("manifest.json", decoding);
        assert!(e.source().is_some(), "{e}");
        assert!(e
            .to_string()
            .starts_with("manifest.json cannot be read: expected value"));

        let e = SnapshotError::invalid("a stored file name", "`..` is not a content hash");
        assert!(e.source().is_none());
        assert_eq!(
            e.to_string(),
            "a stored file name cannot be read: `..` is not a content hash"
        );
    }
}
