//! The `wordcount` binary: runs the word-count topology as one instance of its app.

use clap::Parser;
use eddy::config::ConfigLoader;
use eddy::App;

/// Exactly-once word counts over Kafka. Every flag can also be set in the config file or
/// through `EDDY__SECTION__KEY` environment variables (`app.input_topic`, `app.output_topic`).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Kafka bootstrap servers (`kafka.bootstrap_servers`).
    #[arg(long)]
    bootstrap_servers: Option<String>,
    /// Application id (`application.id`).
    #[arg(long)]
    application_id: Option<String>,
    /// Topic of input lines (`app.input_topic`).
    #[arg(long)]
    input_topic: Option<String>,
    /// Topic of word counts (`app.output_topic`).
    #[arg(long)]
    output_topic: Option<String>,
    /// State directory (`state.dir`).
    #[arg(long)]
    state_dir: Option<String>,
    /// Snapshot store directory for checkpoints (`snapshot.dir`).
    #[arg(long)]
    snapshot_dir: Option<String>,
    /// Start from this savepoint directory, applied once (`snapshot.from_savepoint`).
    #[arg(long)]
    from_savepoint: Option<String>,
    /// A TOML configuration file.
    #[arg(long)]
    config: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut loader = ConfigLoader::new()
        .flag_opt("kafka.bootstrap_servers", args.bootstrap_servers)
        .flag_opt("application.id", args.application_id)
        .flag_opt("app.input_topic", args.input_topic)
        .flag_opt("app.output_topic", args.output_topic)
        .flag_opt("state.dir", args.state_dir)
        .flag_opt("snapshot.dir", args.snapshot_dir)
        .flag_opt("snapshot.from_savepoint", args.from_savepoint);
    if let Some(file) = args.config {
        loader = loader.file(file);
    }
    let config = loader.load()?;
    let setting = |key: &str| {
        config.app_setting(key).map(str::to_owned).ok_or_else(|| {
            anyhow::anyhow!("`app.{key}` is required (flag --{})", key.replace('_', "-"))
        })
    };
    let topology = wordcount::topology(&setting("input_topic")?, &setting("output_topic")?)?;
    // `run` sets up logging as configured (`telemetry.log_format`, OTLP export).
    App::new(topology, config).run()?;
    Ok(())
}
