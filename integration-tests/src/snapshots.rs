//! Where a test keeps its snapshots (a directory of its own, or a prefix of its own in the
//! test S3 bucket) and taking a savepoint there with the `eddy` tool.

use std::process::Command;
use std::sync::Arc;

use anyhow::{bail, Context};
use eddy::snapshot::{read_manifest, S3Settings, SnapshotError, SnapshotStore, StoreLocation};

use crate::{workspace_binary, WordcountRun};

/// A test's snapshot store, with the settings apps and the `eddy` tool need to reach it.
#[derive(Debug, Clone)]
pub struct SnapshotTarget {
    location: StoreLocation,
    env: Vec<(String, String)>,
}

impl SnapshotTarget {
    /// A directory inside the run's temporary directory.
    pub fn directory(run: &WordcountRun) -> Self {
        SnapshotTarget {
            location: StoreLocation::Directory(run.dir.path().join("snapshots")),
            env: Vec::new(),
        }
    }

    /// A prefix named after the run's application id in the bucket of the test S3 server
    /// (started when it is not running).
    ///
    /// # Errors
    /// No S3 server can be started.
    pub fn s3(run: &WordcountRun) -> anyhow::Result<Self> {
        Ok(SnapshotTarget {
            location: StoreLocation::S3 {
                bucket: eddy_testkit::S3_BUCKET.to_owned(),
                prefix: run.application_id.clone(),
            },
            env: eddy_testkit::s3_environment()?,
        })
    }

    /// The store's location, as `snapshot.dir` and `--store` take it.
    pub fn location(&self) -> String {
        self.location.to_string()
    }

    /// The variables apps and the `eddy` tool need besides the location (the S3 settings).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The app settings that use this store for checkpoints: `snapshot.dir`, the S3
    /// settings, then `extra`.
    pub fn settings(&self, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = vec![("EDDY__SNAPSHOT__DIR".to_owned(), self.location())];
        env.extend(self.env.iter().cloned());
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        env
    }

    /// Opens the store, as apps reach it.
    ///
    /// # Errors
    /// The store cannot be opened.
    pub fn open(&self) -> anyhow::Result<Arc<dyn SnapshotStore>> {
        Ok(self.location.open(&self.s3_settings())?)
    }

    /// The S3 settings apps get (empty for a directory).
    pub fn s3_settings(&self) -> S3Settings {
        S3Settings {
            endpoint: self.var("EDDY__SNAPSHOT__S3_ENDPOINT"),
            region: self.var("EDDY__SNAPSHOT__S3_REGION"),
            access_key_id: self.var("EDDY__SNAPSHOT__S3_ACCESS_KEY_ID"),
            secret_access_key: self.var("EDDY__SNAPSHOT__S3_SECRET_ACCESS_KEY"),
        }
    }

    /// True when the savepoint at `savepoint` (as `create` printed it) has its manifest.
    ///
    /// # Errors
    /// The location is not a savepoint's, or the store cannot be read.
    pub fn has_manifest(&self, savepoint: &str) -> anyhow::Result<bool> {
        match read_manifest(savepoint, &self.s3_settings()) {
            Ok(_) => Ok(true),
            Err(SnapshotError::Missing(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn var(&self, key: &str) -> Option<String> {
        self.env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
}

/// Takes a savepoint of the running app with `eddy savepoint create` into `target` and
/// returns the savepoint location it printed.
///
/// # Errors
/// Fails when the command fails (with its output).
pub fn create_savepoint(run: &WordcountRun, target: &SnapshotTarget) -> anyhow::Result<String> {
    let output = Command::new(workspace_binary("eddy")?)
        .args(["savepoint", "create", "--application-id"])
        .arg(&run.application_id)
        .arg("--bootstrap-servers")
        .arg(run.kafka.bootstrap_servers())
        .arg("--store")
        .arg(target.location())
        .args(["--timeout-secs", "60"])
        .env_remove("EDDY__APPLICATION__ID")
        .envs(target.env().iter().map(|(k, v)| (k, v)))
        .output()
        .context("running eddy savepoint create")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!(
            "eddy savepoint create failed ({}):\n{stderr}",
            output.status
        );
    }
    let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if path.is_empty() {
        bail!("eddy savepoint create printed no path:\n{stderr}");
    }
    Ok(path)
}

/// `pairs` borrowed, as [`WordcountRun::start`] takes them.
pub fn borrowed(pairs: &[(String, String)]) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}
