//! A test app that counts clicks per user in tumbling one-second windows with 500 ms of
//! grace and emits final results only. A record's event time is its value (milliseconds);
//! output: `<count>` under the windowed key (user, start, end); records beyond grace go to
//! `<output topic>-late`. Takes wordcount's flags, and `--idle-ms` (or
//! `WINDOWED_CLICKS_IDLE_MS`) to turn on the idle-input policy.

use std::time::Duration;

use clap::Parser;
use eddy::prelude::*;
use eddy_integration_tests::TestAppArgs;

/// Flags, as wordcount takes them.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    app: TestAppArgs,
    /// Lets windows close after this much idle input (the idle-input policy); off when 0.
    #[arg(long, env = "WINDOWED_CLICKS_IDLE_MS", default_value_t = 0)]
    idle_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = args.app.eddy.loader().load()?;
    let builder = StreamsBuilder::new();
    let mut windowed = builder
        .stream_with_timestamps(
            &args.app.input_topic,
            StringSerde,
            StringSerde,
            |_: &String, value: &String, _| value.trim().parse().unwrap_or(-1),
        )
        .group_by_key(StringSerde, StringSerde)
        .windowed_by(TimeWindows::of(Duration::from_secs(1)).grace(Duration::from_millis(500)))
        .emit(Emit::OnWindowClose)
        .late_records_to(&format!("{}-late", args.app.output_topic));
    if args.idle_ms > 0 {
        windowed = windowed.advance_when_idle(Duration::from_millis(args.idle_ms));
    }
    windowed
        .count("clicks")
        .map_values(|count: i64| count.to_string())
        .to_stream()
        .to(
            &args.app.output_topic,
            WindowedSerde::new(StringSerde),
            Nullable(StringSerde),
        );
    App::new(builder.build()?, config).run()?;
    Ok(())
}
