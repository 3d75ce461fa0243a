//! The flags every test app takes, as wordcount does: its input and output topics and
//! Eddy's settings.

use eddy::config::ConfigArgs;

/// A test app's command line: `--input-topic`, `--output-topic` and Eddy's settings.
/// Apps with flags of their own flatten it into theirs.
#[derive(Debug, clap::Parser)]
pub struct TestAppArgs {
    /// The topic the app reads.
    #[arg(long)]
    pub input_topic: String,
    /// The topic the app writes.
    #[arg(long)]
    pub output_topic: String,
    /// Eddy's settings (`--config`, `--set KEY=VALUE`, one flag per setting).
    #[command(flatten)]
    pub eddy: ConfigArgs,
}
