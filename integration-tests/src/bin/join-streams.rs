//! A test app that outer-joins views (the input topic) with clicks (`<input topic>-clicks`)
//! of the same user within 1 s, with an hour of grace. Values are `<id>@<event time ms>`;
//! each result is `<view id or ->/<click id or ->` under the user. Takes wordcount's flags.

use std::time::Duration;

use clap::Parser;
use eddy::prelude::*;
use eddy_integration_tests::TestAppArgs;

/// The event time after the `@` of a value; -1 (an invalid record) without one.
fn event_time(value: &str) -> i64 {
    value
        .split_once('@')
        .and_then(|(_, t)| t.parse().ok())
        .unwrap_or(-1)
}

fn id(value: Option<&String>) -> &str {
    value.map_or("-", |v| v.split_once('@').map_or(v.as_str(), |(id, _)| id))
}

fn main() -> anyhow::Result<()> {
    let args = TestAppArgs::parse();
    let config = args.eddy.loader().load()?;
    let builder = StreamsBuilder::new();
    let views = builder.stream_with_timestamps(
        &args.input_topic,
        StringSerde,
        StringSerde,
        |_, v: &String, _| event_time(v),
    );
    let clicks = builder.stream_with_timestamps(
        &format!("{}-clicks", args.input_topic),
        StringSerde,
        StringSerde,
        |_, v: &String, _| event_time(v),
    );
    views
        .outer_join_stream(
            &clicks,
            JoinWindows::of(Duration::from_secs(1)).grace(Duration::from_secs(3_600)),
            |view: Option<&String>, click: Option<&String>| format!("{}/{}", id(view), id(click)),
            StreamJoined::new("views-clicks", StringSerde, StringSerde, StringSerde),
        )
        .to(&args.output_topic, StringSerde, StringSerde);
    App::new(builder.build()?, config).run()?;
    Ok(())
}
