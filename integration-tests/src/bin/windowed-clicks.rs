//! A test app that counts clicks per user in tumbling one-second windows with 500 ms of
//! grace and emits final results only. A record's event time is its value (milliseconds);
//! output: `<count>` under the windowed key (user, start, end); records beyond grace go to
//! `<output topic>-late`. Takes wordcount's flags.

use std::time::Duration;

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
    builder
        .stream_with_timestamps(
            &args.input_topic,
            StringSerde,
            StringSerde,
            |_: &String, value: &String, _| value.trim().parse().unwrap_or(-1),
        )
        .group_by_key(StringSerde, StringSerde)
        .windowed_by(TimeWindows::of(Duration::from_secs(1)).grace(Duration::from_millis(500)))
        .emit(Emit::OnWindowClose)
        .late_records_to(&format!("{}-late", args.output_topic))
        .count("clicks")
        .map_values(|count: i64| count.to_string())
        .to_stream()
        .to(
            &args.output_topic,
            WindowedSerde::new(StringSerde),
            Nullable(StringSerde),
        );
    App::new(builder.build()?, config).run()?;
    Ok(())
}
