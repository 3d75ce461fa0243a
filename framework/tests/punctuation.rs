//! Punctuation on stream time, run with the in-memory test driver: a stream-time punctuator
//! fires when the largest record timestamp seen passes its interval, never on wall-clock
//! time, and not again for out-of-order records older than the stream time.

use std::time::Duration;

use eddy::processor::{ProcessError, Processor, ProcessorContext, PunctuationType};
use eddy::record::Record;
use eddy::serde::StringSerde;
use eddy::test_driver::TopologyTestDriver;
use eddy::topology::TopologyBuilder;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Forwards each record as `record`, and on each punctuation `<kind>` at its time; the
/// value is the record's or the punctuation's timestamp.
struct Ticker;

impl Processor for Ticker {
    type KeyIn = String;
    type ValueIn = String;
    type KeyOut = String;
    type ValueOut = String;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, String>) -> Result<(), ProcessError> {
        ctx.schedule(Duration::from_secs(10), PunctuationType::StreamTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        record: Record<String, String>,
    ) -> Result<(), ProcessError> {
        let at = record.timestamp;
        ctx.forward(Record::new("record".to_owned(), at.to_string(), at));
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        kind: PunctuationType,
        timestamp: i64,
    ) -> Result<(), ProcessError> {
        ctx.forward(Record::new(
            format!("{kind:?}"),
            timestamp.to_string(),
            timestamp,
        ));
        Ok(())
    }
}

fn ticker() -> Result<TopologyTestDriver, Box<dyn std::error::Error>> {
    let mut builder = TopologyBuilder::new();
    builder
        .add_source("in", "in", StringSerde, StringSerde)
        .add_processor("ticker", || Ticker, &["in"], &[])
        .add_sink("out", "out", StringSerde, StringSerde, &["ticker"]);
    Ok(TopologyTestDriver::new(builder.build()?)?)
}

/// Pipes a record at `at` and returns what came out since the last call, as `key@value`.
fn pipe(
    driver: &mut TopologyTestDriver,
    at: i64,
) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    driver.pipe_input(
        "in",
        &StringSerde,
        &StringSerde,
        &"k".to_owned(),
        &"v".to_owned(),
        at,
    )?;
    output(driver)
}

fn output(driver: &mut TopologyTestDriver) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    Ok(driver
        .read_output("out", &StringSerde, &StringSerde)?
        .into_iter()
        .map(|r| format!("{}@{}", r.key, r.value))
        .collect())
}

#[test]
fn a_stream_time_punctuation_follows_the_largest_timestamp_not_the_wall_clock() -> TestResult {
    let mut d = ticker()?;
    assert_eq!(pipe(&mut d, 3_000)?, ["record@3000"]);
    d.advance_wall_clock(Duration::from_secs(3_600))?;
    assert_eq!(
        output(&mut d)?,
        Vec::<String>::new(),
        "wall-clock time drives nothing"
    );
    assert_eq!(
        pipe(&mut d, 9_999)?,
        ["record@9999"],
        "the interval is not reached"
    );
    assert_eq!(
        pipe(&mut d, 10_000)?,
        ["record@10000", "StreamTime@10000"],
        "stream time reaches the interval: one punctuation, after the record"
    );
    assert_eq!(
        pipe(&mut d, 4_000)?,
        ["record@4000"],
        "an older record leaves stream time where it was"
    );
    assert_eq!(
        pipe(&mut d, 10_000)?,
        ["record@10000"],
        "not again at the same time"
    );
    assert_eq!(pipe(&mut d, 19_999)?, ["record@19999"]);
    assert_eq!(
        pipe(&mut d, 45_000)?,
        ["record@45000", "StreamTime@45000"],
        "a jump over several intervals fires once"
    );
    assert_eq!(
        pipe(&mut d, 20_000)?,
        ["record@20000"],
        "older again: nothing"
    );
    assert_eq!(pipe(&mut d, 49_999)?, ["record@49999"]);
    d.advance_wall_clock(Duration::from_secs(3_600))?;
    assert_eq!(output(&mut d)?, Vec::<String>::new());
    assert_eq!(
        pipe(&mut d, 50_000)?,
        ["record@50000", "StreamTime@50000"],
        "the next interval after the jump"
    );
    Ok(())
}
