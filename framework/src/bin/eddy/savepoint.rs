//! `eddy savepoint`: take, list, inspect and delete savepoints, and collect the store's
//! garbage, in a directory or on S3.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};

use eddy::snapshot::{
    collect_garbage, create_savepoint_retrying, delete_savepoint, list_savepoints, read_manifest,
    S3Settings, SavepointLocation, SnapshotStore, StoreLocation, MIN_GC_GRACE,
};

/// How to reach S3 for `s3://` stores: the app's own settings, from the same environment.
#[derive(Debug, Clone, Args)]
pub struct S3Args {
    /// URL of an S3-compatible service (unset: AWS S3).
    #[arg(long, env = "EDDY__SNAPSHOT__S3_ENDPOINT")]
    s3_endpoint: Option<String>,
    /// The bucket's region.
    #[arg(long, env = "EDDY__SNAPSHOT__S3_REGION")]
    s3_region: Option<String>,
    /// S3 access key id.
    #[arg(long, env = "EDDY__SNAPSHOT__S3_ACCESS_KEY_ID")]
    s3_access_key_id: Option<String>,
    /// S3 secret key (prefer the environment variable to the flag).
    #[arg(
        long,
        env = "EDDY__SNAPSHOT__S3_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    s3_secret_access_key: Option<String>,
}

impl S3Args {
    fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: self.s3_secret_access_key.clone(),
        }
    }
}

/// The savepoint subcommands.
#[derive(Debug, Subcommand)]
pub enum SavepointCommand {
    /// Takes a savepoint of a running app and prints its location.
    Create {
        /// The app's `application.id`.
        #[arg(long, env = "EDDY__APPLICATION__ID")]
        application_id: String,
        /// Comma-separated `host:port` list of brokers.
        #[arg(
            long,
            env = "EDDY__KAFKA__BOOTSTRAP_SERVERS",
            default_value = "127.0.0.1:9092"
        )]
        bootstrap_servers: String,
        /// Snapshot store every instance reaches: a directory or `s3://bucket/prefix`.
        #[arg(long, env = "EDDY__SNAPSHOT__DIR")]
        store: String,
        /// How long the app may take, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
        #[command(flatten)]
        s3: S3Args,
    },
    /// Lists the complete savepoints of an app.
    List {
        /// The app's `application.id`.
        #[arg(long, env = "EDDY__APPLICATION__ID")]
        application_id: String,
        /// Snapshot store: a directory or `s3://bucket/prefix`.
        #[arg(long, env = "EDDY__SNAPSHOT__DIR")]
        store: String,
        #[command(flatten)]
        s3: S3Args,
    },
    /// Shows what a savepoint holds: tasks, stores, offsets and sizes.
    Inspect {
        /// The savepoint's location (as `create` and `list` print it).
        path: String,
        #[command(flatten)]
        s3: S3Args,
    },
    /// Deletes a savepoint: first its manifest (it is no longer listed or restorable), then
    /// its parts. Its files go at the next `gc` unless another snapshot shares them.
    Delete {
        /// The savepoint's location.
        path: String,
        #[command(flatten)]
        s3: S3Args,
    },
    /// Removes the stored files no savepoint or checkpoint of any app in the store
    /// references, once older than the grace period.
    Gc {
        /// Snapshot store: a directory or `s3://bucket/prefix`.
        #[arg(long, env = "EDDY__SNAPSHOT__DIR")]
        store: String,
        /// Unreferenced files younger than this are kept (snapshots still uploading);
        /// at least 7200.
        #[arg(long, default_value_t = 6 * 3600)]
        grace_secs: u64,
        /// Report what would be removed without removing it.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        s3: S3Args,
    },
}

fn open(store: &str, s3: &S3Args) -> anyhow::Result<Arc<dyn SnapshotStore>> {
    let mut location = StoreLocation::parse(store)?;
    if let StoreLocation::Directory(dir) = &location {
        // Instances resolve the path themselves: give them an absolute one.
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the snapshot store {}", dir.display()))?;
        let absolute = dir
            .canonicalize()
            .with_context(|| format!("resolving {}", dir.display()))?;
        location = StoreLocation::Directory(absolute);
    }
    Ok(location.open(&s3.settings())?)
}

/// Runs one savepoint subcommand.
pub fn run(command: SavepointCommand) -> anyhow::Result<()> {
    match command {
        SavepointCommand::Create {
            application_id,
            bootstrap_servers,
            store,
            timeout_secs,
            s3,
        } => {
            let settings = eddy::kafka::KafkaSettings::new(bootstrap_servers);
            let store = open(&store, &s3)?;
            let started = std::time::Instant::now();
            let mut progress =
                |line: &str| eprintln!("[{:>6.2}s] {line}", started.elapsed().as_secs_f64());
            // A rebalance during the savepoint fails it cleanly; try again a few times.
            let (path, _) = create_savepoint_retrying(
                &settings,
                &application_id,
                store.as_ref(),
                Duration::from_secs(timeout_secs),
                5,
                &mut progress,
            )?;
            println!("{path}");
        }
        SavepointCommand::List {
            application_id,
            store,
            s3,
        } => {
            let store = StoreLocation::parse(&store)?.open(&s3.settings())?;
            let listed = list_savepoints(store.as_ref(), &application_id)?;
            if listed.is_empty() {
                println!(
                    "no complete savepoint of `{application_id}` in {}",
                    store.describe()
                );
            }
            for (path, manifest) in listed {
                println!(
                    "{}\t{} tasks\t{} bytes\tcreated_ms={}\t{path}",
                    manifest.id,
                    manifest.tasks.len(),
                    manifest.size(),
                    manifest.created_ms,
                );
            }
        }
        SavepointCommand::Inspect { path, s3 } => inspect(&path, &s3)?,
        SavepointCommand::Delete { path, s3 } => {
            let location = SavepointLocation::parse(&path)?;
            let store = location.open(&s3.settings())?;
            let parts = delete_savepoint(store.as_ref(), &location.application_id, &location.id)?;
            println!("deleted savepoint {} ({parts} task parts)", location.path());
        }
        SavepointCommand::Gc {
            store,
            grace_secs,
            dry_run,
            s3,
        } => {
            let grace = Duration::from_secs(grace_secs);
            anyhow::ensure!(
                grace >= MIN_GC_GRACE,
                "--grace-secs {grace_secs} is shorter than the minimum {}",
                MIN_GC_GRACE.as_secs()
            );
            let store = StoreLocation::parse(&store)?.open(&s3.settings())?;
            let now = eddy::record::wall_clock_ms();
            let report = collect_garbage(store.as_ref(), grace, now, dry_run)?;
            for blob in &report.missing {
                eprintln!("warning: referenced file {blob} is missing from the store");
            }
            println!(
                "{} documents reference {} files; {} unreferenced files kept as recent; {} {} ({} bytes)",
                report.documents,
                report.referenced,
                report.recent,
                if dry_run { "would remove" } else { "removed" },
                report.removed,
                report.removed_bytes
            );
        }
    }
    Ok(())
}

fn inspect(path: &str, s3: &S3Args) -> anyhow::Result<()> {
    let (_, manifest) = read_manifest(path, &s3.settings())?;
    println!("savepoint {} of `{}`", manifest.id, manifest.application_id);
    println!("created_ms {}", manifest.created_ms);
    println!("topology {}", manifest.topology_fingerprint);
    println!(
        "size {} bytes in {} tasks",
        manifest.size(),
        manifest.tasks.len()
    );
    for store in manifest.stores() {
        println!(
            "store {} ({}) key {} value {}",
            store.name, store.kind, store.key_format, store.value_format
        );
    }
    for task in &manifest.tasks {
        let inputs: Vec<String> = task
            .inputs
            .iter()
            .map(|i| format!("{}[{}]@{}", i.topic, i.partition, i.offset))
            .collect();
        let changelogs: Vec<String> = task
            .stores
            .iter()
            .map(|s| format!("{}@{}", s.name, s.changelog_position.unwrap_or(0)))
            .collect();
        println!(
            "task {}\t{} files\t{} bytes\tinputs {}\tchangelogs {}",
            task.task,
            task.files.len(),
            task.size(),
            inputs.join(","),
            changelogs.join(",")
        );
    }
    Ok(())
}
