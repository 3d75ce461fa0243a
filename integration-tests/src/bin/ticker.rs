//! A test app whose output comes from wall-clock punctuation alone: every task counts its
//! ticks in a changelogged store and emits the count (key `p<partition>`), so under
//! exactly-once each key's committed values are exactly 1, 2, 3, ... Input records are only
//! consumed (their offsets commit). Takes wordcount's flags; `app.tick_ms` sets the interval
//! (default 2000).

use std::time::Duration;

use clap::Parser;
use eddy::dsl::StreamsBuilder;
use eddy::processor::{ProcessError, Processor, ProcessorContext, PunctuationType};
use eddy::record::Record;
use eddy::serde::{I64Serde, StringSerde};
use eddy::state::StoreBuilder;
use eddy::App;
use eddy_integration_tests::TestAppArgs;

struct Ticker {
    interval: Duration,
}

impl Processor for Ticker {
    type KeyIn = String;
    type ValueIn = String;
    type KeyOut = String;
    type ValueOut = String;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), ProcessError> {
        ctx.schedule(self.interval, PunctuationType::WallClockTime);
        Ok(())
    }

    fn process(
        &mut self,
        _ctx: &mut ProcessorContext<'_, String, String>,
        _record: Record<String, String>,
    ) -> Result<(), ProcessError> {
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        _kind: PunctuationType,
        timestamp: i64,
    ) -> Result<(), ProcessError> {
        let key = "ticks".to_owned();
        let ticks = {
            let mut store = ctx.key_value_store::<String, i64>("ticks")?;
            let ticks = store.get(&key)?.unwrap_or(0) + 1;
            store.put(&key, &ticks)?;
            ticks
        };
        let partition = ctx.partition();
        ctx.forward(Record::new(
            format!("p{partition}"),
            ticks.to_string(),
            timestamp,
        ));
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let args = TestAppArgs::parse();
    let config = args.eddy.loader().load()?;
    let tick_ms: u64 = config.app_setting("tick_ms").unwrap_or("2000").parse()?;
    let builder = StreamsBuilder::new();
    builder.add_store(StoreBuilder::rocksdb("ticks", StringSerde, I64Serde));
    builder
        .stream(&args.input_topic, StringSerde, StringSerde)
        .process(
            "ticker",
            move || Ticker {
                interval: Duration::from_millis(tick_ms),
            },
            &["ticks"],
        )
        .to(&args.output_topic, StringSerde, StringSerde);
    App::new(builder.build()?, config).run()?;
    Ok(())
}
