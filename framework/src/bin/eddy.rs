//! The `eddy` command-line tool: operational commands for Eddy apps.

use std::time::Duration;

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
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Check {
            bootstrap_servers,
            timeout_secs,
        } => check(&bootstrap_servers, Duration::from_secs(timeout_secs)),
    }
}

fn check(bootstrap_servers: &str, timeout: Duration) -> anyhow::Result<()> {
    let consumer: BaseConsumer = eddy::KafkaSettings::new(bootstrap_servers)
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
