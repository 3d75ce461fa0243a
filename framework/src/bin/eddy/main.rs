//! The `eddy` command-line tool: new app projects, savepoints, and cluster checks.

use std::path::PathBuf;
use std::time::Duration;

mod savepoint;
mod scaffold;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use rdkafka::consumer::{BaseConsumer, Consumer};

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
        command: savepoint::SavepointCommand,
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
        Command::Savepoint { command } => savepoint::run(command),
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
