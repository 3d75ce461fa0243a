//! A test app that counts clicks per user in tumbling one-second windows with 500 ms of
//! grace and emits final results only. A record's event time is its value (milliseconds);
//! output: `<count>` under the windowed key (user, start, end); records beyond grace go to
//! `<output topic>-late`. Takes wordcount's flags, `--idle-ms` (or
//! `WINDOWED_CLICKS_IDLE_MS`) to turn on the idle-input policy, and `--session-gap-ms` (or
//! `WINDOWED_CLICKS_SESSION_GAP_MS`) to count per session of that gap instead (the windowed
//! key then holds the session's first and last click times).

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
    /// Counts per session with this inactivity gap instead of per one-second window; 0 for
    /// one-second windows.
    #[arg(long, env = "WINDOWED_CLICKS_SESSION_GAP_MS", default_value_t = 0)]
    session_gap_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = args.app.eddy.loader().load()?;
    let builder = StreamsBuilder::new();
    let grouped = builder
        .stream_with_timestamps(
            &args.app.input_topic,
            StringSerde,
            StringSerde,
            |_: &String, value: &String, _| value.trim().parse().unwrap_or(-1),
        )
        .group_by_key(StringSerde, StringSerde);
    let grace = Duration::from_millis(500);
    let late = format!("{}-late", args.app.output_topic);
    let idle = (args.idle_ms > 0).then(|| Duration::from_millis(args.idle_ms));
    let counts = if args.session_gap_ms > 0 {
        let gap = Duration::from_millis(args.session_gap_ms);
        let mut sessions = grouped
            .windowed_by_sessions(SessionWindows::with_gap(gap).grace(grace))
            .emit(Emit::OnWindowClose)
            .late_records_to(&late);
        if let Some(after) = idle {
            sessions = sessions.advance_when_idle(after);
        }
        sessions.count("sessions")
    } else {
        let mut windowed = grouped
            .windowed_by(TimeWindows::of(Duration::from_secs(1)).grace(grace))
            .emit(Emit::OnWindowClose)
            .late_records_to(&late);
        if let Some(after) = idle {
            windowed = windowed.advance_when_idle(after);
        }
        windowed.count("clicks")
    };
    counts
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
