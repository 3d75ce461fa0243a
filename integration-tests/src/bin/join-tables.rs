//! A test app that outer-joins two tables on their key: the input topic (left) and
//! `<input topic>-right`, into a table written to the output topic as `<left or ->|<right or
//! ->` (a tombstone once neither side holds the key). Takes wordcount's flags.

use clap::Parser;
use eddy::prelude::*;
use eddy_integration_tests::TestAppArgs;

fn main() -> anyhow::Result<()> {
    let args = TestAppArgs::parse();
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
