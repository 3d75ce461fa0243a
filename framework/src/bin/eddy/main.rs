//! The `eddy` command-line tool: new app projects, savepoints, and cluster checks.

use std::path::PathBuf;
use std::time::Duration;

mod scaffold;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use rdkafka::consumer::{BaseConsumer, Consumer};

use eddy::snapshot::{create_savepoint_retrying, list_savepoints, read_manifest, DirectoryStore};

/// Operate Eddy apps and the Kafka cluster they run on.
#[derive(Debug, Parser)]
#[command(name = "eddy", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints every configuration key with its default and meaning (a Markdown table).
    Settings,
    /// Checks that a Kafka cluster answers and lists its brokers and topics.
    Check {
        /// Comma-separated `host:port` list of brokers.
        #[arg(
            long,
            env = "EDDY__KAFKA__BOOTSTRAP_SERVERS",
            default_value = "127.0.0.1:9092"
        )]
        bootstrap_servers: String,
        /// How long to wait for an answer, in seconds.
        #[arg(long, default_value_t = 10)]
        timeout_secs: u64,
    },
    /// Savepoints: consistent snapshots of a whole running app.
    Savepoint {
        #[command(subcommand)]
        command: SavepointCommand,
    },
    /// Creates a new app project: a topology, its test, a Dockerfile, a compose file.
    New {
        /// The app's name (package, binary and default `application.id`).
        name: String,
        /// Directory to create the project in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The Eddy framework sources to depend on (an Eddy checkout's `framework/`).
        #[arg(long)]
        eddy_path: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum SavepointCommand {
    /// Takes a savepoint of a running app and prints its directory.
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
        /// Snapshot store directory (every instance must reach it).
        #[arg(long, env = "EDDY__SNAPSHOT__DIR")]
        store: PathBuf,
        /// How long the app may take, in seconds.
        #[arg(long, default_value_t = 120)]
        timeout_secs: u64,
    },
    /// Lists the complete savepoints of an app.
    List {
        /// The app's `application.id`.
        #[arg(long, env = "EDDY__APPLICATION__ID")]
        application_id: String,
        /// Snapshot store directory.
        #[arg(long, env = "EDDY__SNAPSHOT__DIR")]
        store: PathBuf,
    },
    /// Shows what a savepoint holds: tasks, stores, offsets and sizes.
    Inspect {
        /// The savepoint directory.
        path: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Settings => {
            print!("{}", eddy::config::markdown_table());
            Ok(())
        }
        Command::Check {
            bootstrap_servers,
            timeout_secs,
        } => check(&bootstrap_servers, Duration::from_secs(timeout_secs)),
        Command::Savepoint { command } => savepoint(command),
        Command::New {
            name,
            dir,
            eddy_path,
        } => {
            let created = scaffold::create(&name, &dir, eddy_path)?;
            println!("created {}", created.display());
            println!("next: cd {} && cargo test", created.display());
            Ok(())
        }
    }
}

fn savepoint(command: SavepointCommand) -> anyhow::Result<()> {
    match command {
        SavepointCommand::Create {
            application_id,
            bootstrap_servers,
            store,
            timeout_secs,
        } => {
            let settings = eddy::kafka::KafkaSettings::new(bootstrap_servers);
            // Instances resolve the path themselves: give them an absolute one.
            std::fs::create_dir_all(&store)
                .with_context(|| format!("creating the snapshot store {}", store.display()))?;
            let store = store
                .canonicalize()
                .with_context(|| format!("resolving {}", store.display()))?;
            let started = std::time::Instant::now();
            let store = DirectoryStore::new(store);
            let mut progress =
                |line: &str| eprintln!("[{:>6.2}s] {line}", started.elapsed().as_secs_f64());
            // A rebalance during the savepoint fails it cleanly; try again a few times.
            let (path, _) = create_savepoint_retrying(
                &settings,
                &application_id,
                &store,
                Duration::from_secs(timeout_secs),
                5,
                &mut progress,
            )?;
            println!("{}", path.display());
        }
        SavepointCommand::List {
            application_id,
            store,
        } => {
            let listed = list_savepoints(&DirectoryStore::new(&store), &application_id)?;
            if listed.is_empty() {
                println!(
                    "no complete savepoint of `{application_id}` in {}",
                    store.display()
                );
            }
            for (path, manifest) in listed {
                println!(
                    "{}\t{} tasks\t{} bytes\tcreated_ms={}\t{}",
                    manifest.id,
                    manifest.tasks.len(),
                    manifest.size(),
                    manifest.created_ms,
                    path.display()
                );
            }
        }
        SavepointCommand::Inspect { path } => {
            let (_, manifest) = read_manifest(&path)?;
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
        }
    }
    Ok(())
}

fn check(bootstrap_servers: &str, timeout: Duration) -> anyhow::Result<()> {
    let consumer: BaseConsumer = eddy::kafka::KafkaSettings::new(bootstrap_servers)
        .client_config("eddy-cli")
        .create()
        .context("creating a Kafka client")?;
    let metadata = consumer
        .fetch_metadata(None, timeout)
        .with_context(|| format!("no answer from Kafka at {bootstrap_servers}"))?;
    if metadata.brokers().is_empty() {
        bail!("Kafka at {bootstrap_servers} answered but lists no brokers");
    }
    for broker in metadata.brokers() {
        println!(
            "broker {} at {}:{}",
            broker.id(),
            broker.host(),
            broker.port()
        );
    }
    let topics = metadata
        .topics()
        .iter()
        .filter(|t| !t.name().starts_with("__"))
        .count();
    println!("{topics} topic(s)");
    Ok(())
}
