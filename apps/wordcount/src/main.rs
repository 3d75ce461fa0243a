//! The `wordcount` binary: runs the word-count topology as one instance of its app.

use clap::Parser;
use eddy::config::ConfigArgs;
use eddy::App;

/// Exactly-once word counts over Kafka. Every setting is a flag below, a key of the
/// `--config` file or an `EDDY__SECTION__KEY` environment variable; flags win.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Topic of input lines (`app.input_topic`).
    #[arg(long)]
    input_topic: Option<String>,
    /// Topic of word counts (`app.output_topic`).
    #[arg(long)]
    output_topic: Option<String>,
    #[command(flatten)]
    eddy: ConfigArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let loader = args
        .eddy
        .loader()
        .flag_opt("app.input_topic", args.input_topic)
        .flag_opt("app.output_topic", args.output_topic);
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
