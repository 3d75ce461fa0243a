//! A test app that shows each task's stream time: a record's event time is its value (a
//! number), and the output for it is `<event time>@<stream time>` under the record's key.
//! Takes wordcount's flags.

use clap::Parser;
use eddy::prelude::*;
use eddy_integration_tests::TestAppArgs;

/// Forwards `<event time>@<stream time>` for every record.
struct ShowStreamTime;

impl Processor for ShowStreamTime {
    type KeyIn = String;
    type ValueIn = String;
    type KeyOut = String;
    type ValueOut = String;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        record: Record<String, String>,
    ) -> Result<(), ProcessError> {
        let shown = format!("{}@{}", record.timestamp, ctx.stream_time());
        ctx.forward(record.with_value(shown));
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let args = TestAppArgs::parse();
    let config = args.eddy.loader().load()?;
    let builder = StreamsBuilder::new();
    builder
        .stream_with_timestamps(
            &args.input_topic,
            StringSerde,
            StringSerde,
            |_: &String, value: &String, _| value.trim().parse().unwrap_or(-1),
        )
        .process("show-stream-time", || ShowStreamTime, &[])
        .to(&args.output_topic, StringSerde, StringSerde);
    App::new(builder.build()?, config).run()?;
    Ok(())
}
