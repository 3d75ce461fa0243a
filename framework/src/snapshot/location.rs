//! Where a snapshot store is (a directory or an S3 bucket prefix), how to reach S3, and
//! opening the store a location names.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::store::{DirectoryStore, SnapshotStore};
use super::SnapshotError;

/// The scheme of an object-storage location.
const S3_SCHEME: &str = "s3://";

/// Where a snapshot store is: `/a/directory` every instance reaches (a local disk or a shared
/// mount) or `s3://bucket/prefix` on S3-compatible object storage.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum StoreLocation {
    /// A directory.
    Directory(PathBuf),
    /// A bucket and a key prefix inside it (`""` for the whole bucket).
    S3 {
        /// The bucket.
        bucket: String,
        /// Key prefix without leading or trailing `/`.
        prefix: String,
    },
}

impl StoreLocation {
    /// Reads `s3://bucket[/prefix]` or a directory path.
    ///
    /// # Errors
    /// An `s3://` location without a valid bucket name, or with an empty, `.` or `..` segment.
    pub fn parse(text: &str) -> Result<Self, SnapshotError> {
        let Some(rest) = text.strip_prefix(S3_SCHEME) else {
            return Ok(StoreLocation::Directory(PathBuf::from(text)));
        };
        let rest = rest.trim_end_matches('/');
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bad = |why: &str| SnapshotError::invalid(format!("snapshot store `{text}`"), why);
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(bad(
                "the bucket must be 3 to 63 lowercase letters, digits, `-` or `.`",
            ));
        }
        if !prefix.is_empty() && !prefix.split('/').all(plain_segment) {
            return Err(bad("the prefix must be plain names separated by `/`"));
        }
        Ok(StoreLocation::S3 {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }

    /// The location of `key` inside the store, as text (`<dir>/<key>` or
    /// `s3://bucket/prefix/<key>`).
    pub fn join(&self, key: &str) -> String {
        match self {
            StoreLocation::Directory(dir) => dir.join(key).display().to_string(),
            StoreLocation::S3 { .. } => format!("{self}/{key}"),
        }
    }

    /// Checks a location that other processes will act on (a savepoint target sent over the
    /// control topic): a directory must be absolute and must not climb with `..`.
    ///
    /// # Errors
    /// What is wrong.
    pub fn check_shared(&self) -> Result<(), String> {
        match self {
            StoreLocation::Directory(dir) => {
                let text = dir.to_string_lossy();
                if dir.is_absolute() && !climbs(dir) && !text.contains('\0') {
                    Ok(())
                } else {
                    Err(format!(
                        "`{text}` is not an absolute path without `..` (or an s3:// location)"
                    ))
                }
            }
            StoreLocation::S3 { .. } => Ok(()),
        }
    }

    /// True when `self` is `root` or below it: the same kind, the same bucket, and a path or
    /// prefix that extends the root's by whole names (so `/mnt/blue` is not inside `/mnt/b`).
    pub fn is_inside(&self, root: &StoreLocation) -> bool {
        match (self, root) {
            (StoreLocation::Directory(path), StoreLocation::Directory(root)) => {
                !climbs(path) && !climbs(root) && path.starts_with(root)
            }
            (
                StoreLocation::S3 { bucket, prefix },
                StoreLocation::S3 {
                    bucket: root_bucket,
                    prefix: root_prefix,
                },
            ) => {
                bucket == root_bucket
                    && (root_prefix.is_empty()
                        || prefix == root_prefix
                        || prefix.starts_with(&format!("{root_prefix}/")))
            }
            _ => false,
        }
    }

    /// Opens the store: a [`DirectoryStore`], or an S3 store reached with `s3`.
    ///
    /// # Errors
    /// The S3 client cannot be built from `s3`, or this build has no S3 support.
    pub fn open(&self, s3: &S3Settings) -> Result<Arc<dyn SnapshotStore>, SnapshotError> {
        match self {
            StoreLocation::Directory(dir) => Ok(Arc::new(DirectoryStore::new(dir))),
            #[cfg(feature = "s3")]
            StoreLocation::S3 { bucket, prefix } => {
                Ok(Arc::new(super::s3::S3Store::open(bucket, prefix, s3)?))
            }
            #[cfg(not(feature = "s3"))]
            StoreLocation::S3 { .. } => {
                let _ = s3;
                Err(SnapshotError::Unavailable {
                    store: self.to_string(),
                    message: "this build of eddy has no S3 support (cargo feature `s3`)".to_owned(),
                    source: None,
                })
            }
        }
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Directory(dir) => write!(f, "{}", dir.display()),
            StoreLocation::S3 { bucket, prefix } if prefix.is_empty() => {
                write!(f, "{S3_SCHEME}{bucket}")
            }
            StoreLocation::S3 { bucket, prefix } => write!(f, "{S3_SCHEME}{bucket}/{prefix}"),
        }
    }
}

fn plain_segment(segment: &str) -> bool {
    !segment.is_empty() && segment != "." && segment != ".." && !segment.contains(['\\', '\0'])
}

fn climbs(path: &Path) -> bool {
    path.components().any(|c| matches!(c, Component::ParentDir))
}

/// How to reach S3-compatible object storage (`snapshot.s3_*`). Unset credentials and region
/// fall back to the standard `AWS_*` environment variables and instance credentials.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct S3Settings {
    /// `snapshot.s3_endpoint`: the service's URL (for example `http://127.0.0.1:9000` for a
    /// local server); unset: AWS S3. An `http://` endpoint is allowed as given.
    pub endpoint: Option<String>,
    /// `snapshot.s3_region`: the bucket's region.
    pub region: Option<String>,
    /// `snapshot.s3_access_key_id`.
    pub access_key_id: Option<String>,
    /// `snapshot.s3_secret_access_key` (never printed).
    pub secret_access_key: Option<String>,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_print_and_nest() {
        let s3 = StoreLocation::parse("s3://eddy-snapshots/prod/blue/").unwrap();
        assert_eq!(
            s3,
            StoreLocation::S3 {
                bucket: "eddy-snapshots".to_owned(),
                prefix: "prod/blue".to_owned()
            }
        );
        assert_eq!(s3.to_string(), "s3://eddy-snapshots/prod/blue");
        assert_eq!(
            s3.join("app/savepoints/sp"),
            "s3://eddy-snapshots/prod/blue/app/savepoints/sp"
        );
        let bucket = StoreLocation::parse("s3://eddy-snapshots").unwrap();
        assert_eq!(bucket.join("files"), "s3://eddy-snapshots/files");
        assert!(s3.is_inside(&bucket));
        assert!(!bucket.is_inside(&s3));
        let prod = StoreLocation::parse("s3://eddy-snapshots/prod/bl").unwrap();
        assert!(!s3.is_inside(&prod), "a prefix of a name is not a folder");
        for bad in [
            "s3://Upper",
            "s3://ab",
            "s3://bucket/a//b",
            "s3://bucket/a/../b",
        ] {
            assert!(StoreLocation::parse(bad).is_err(), "{bad}");
        }
        let dir = StoreLocation::parse("/data/snapshots").unwrap();
        assert_eq!(
            dir,
            StoreLocation::Directory(PathBuf::from("/data/snapshots"))
        );
        assert!(dir.check_shared().is_ok());
        assert!(StoreLocation::parse("relative")
            .unwrap()
            .check_shared()
            .is_err());
        assert!(StoreLocation::parse("/a/../etc")
            .unwrap()
            .check_shared()
            .is_err());
        assert!(!dir.is_inside(&bucket));
        assert!(StoreLocation::parse("/data/snapshots/x")
            .unwrap()
            .is_inside(&dir));
    }

    #[test]
    fn the_secret_is_never_printed() {
        let settings = S3Settings {
            secret_access_key: Some("hunter2".to_owned()),
            ..S3Settings::default()
        };
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
