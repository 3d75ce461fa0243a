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
    #[error("{path}: {message}")]
    Io {
        /// The path.
        path: String,
        /// What failed.
        message: String,
    },
    /// The store could not be reached or refused a request (after the client's retries).
    #[error("snapshot store {store}: {message}")]
    Unavailable {
        /// The store's location.
        store: String,
        /// What failed.
        message: String,
    },
    /// Something the snapshot refers to does not exist.
    #[error("missing {0}")]
    Missing(String),
    /// A document could not be decoded.
    #[error("{what} cannot be read: {message}")]
    Corrupt {
        /// What was being read.
        what: String,
        /// The decoder's message.
        message: String,
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

impl SnapshotError {
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
