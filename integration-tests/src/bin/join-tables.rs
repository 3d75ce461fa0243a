//! A test app that outer-joins two tables on their key: the input topic (left) and
//! `<input topic>-right`, into a table written to the output topic as `<left or ->|<right or
//! ->` (a tombstone once neither side holds the key). Takes wordcount's flags.

use clap::Parser;
use eddy::config::ConfigArgs;
use eddy::prelude::*;

/// Flags, as wordcount takes them.
#[derive(Debug, Parser)]
struct Args {
    #[arg(long)]
    input_topic: String,
    #[arg(long)]
    output_topic: String,
    #[command(flatten)]
    eddy: ConfigArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = args.eddy.loader().load()?;
    let builder = StreamsBuilder::new();
    let left = builder.table(&args.input_topic, StringSerde, StringSerde, "left");
    let right = builder.table(
        &format!("{}-right", args.input_topic),
        StringSerde,
        StringSerde,
        "right",
    );
    left.outer_join(
        &right,
        "joined",
        StringSerde,
        |l: Option<&String>, r: Option<&String>| {
            format!(
                "{}|{}",
                l.map_or("-", String::as_str),
                r.map_or("-", String::as_str)
            )
        },
    )
    .to_stream()
    .to(&args.output_topic, StringSerde, Nullable(StringSerde));
    App::new(builder.build()?, config).run()?;
    Ok(())
}
