//! Topology building, the DSL and the Processor API, run with the in-memory test driver.

use std::time::Duration;

use eddy::dsl::StreamsBuilder;
use eddy::processor::{ProcessError, Processor, ProcessorContext, PunctuationType};
use eddy::record::Record;
use eddy::serde::{I64Serde, Nullable, StringSerde, UnitSerde};
use eddy::state::StoreBuilder;
use eddy::task::TaskError;
use eddy::test_driver::TopologyTestDriver;
use eddy::topology::TopologyBuilder;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn wordcount() -> Result<TopologyTestDriver, Box<dyn std::error::Error>> {
    let builder = StreamsBuilder::new();
    builder
        .stream("lines", UnitSerde, StringSerde)
        .flat_map(|_, line: String| {
            line.split_whitespace()
                .map(|w| (w.to_lowercase(), ()))
                .collect::<Vec<_>>()
        })
        .group_by_key(StringSerde, UnitSerde)
        .count("counts")
        .map_values(|n: i64| n.to_string())
        .to_stream()
        .to("word-counts", StringSerde, Nullable(StringSerde));
    Ok(TopologyTestDriver::new(builder.build()?)?)
}

#[test]
fn wordcount_emits_one_running_count_per_occurrence() -> TestResult {
    let mut driver = wordcount()?;
    for (i, line) in ["The cat", "the DOG  the", "", "cat"].iter().enumerate() {
        driver.pipe_input(
            "lines",
            &UnitSerde,
            &StringSerde,
            &(),
            &(*line).to_owned(),
            i as i64,
        )?;
    }
    let out = driver.read_output("word-counts", &StringSerde, &StringSerde)?;
    let pairs: Vec<(String, String)> = out.into_iter().map(|r| (r.key, r.value)).collect();
    let expected = [
        ("the", "1"),
        ("cat", "1"),
        ("the", "2"),
        ("dog", "1"),
        ("the", "3"),
        ("cat", "2"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(pairs, expected);
    assert_eq!(
        driver.store_get::<String, i64>("counts", &"the".to_owned())?,
        Some(3)
    );
    assert_eq!(
        driver.store_get::<String, i64>("counts", &"bird".to_owned())?,
        None
    );
    Ok(())
}

#[test]
fn the_dsl_splits_at_the_repartition_topic() -> TestResult {
    let builder = StreamsBuilder::new();
    builder
        .stream("lines", UnitSerde, StringSerde)
        .select_key(|_, line: &String| line.clone())
        .group_by_key(StringSerde, StringSerde)
        .count("per-line")
        .to_stream()
        .to("out", StringSerde, Nullable(I64Serde));
    let topology = builder.build()?;
    assert_eq!(
        topology.sub_topologies().len(),
        2,
        "{}",
        topology.describe()
    );
    assert!(topology
        .repartition_topics()
        .contains_key("per-line-repartition"));
    assert_eq!(
        topology.sub_topologies()[1].stores,
        vec!["per-line".to_owned()]
    );
    Ok(())
}

#[test]
fn a_topology_reports_every_problem_at_once() {
    let mut builder = TopologyBuilder::new();
    builder
        .add_source("src", "in", StringSerde, StringSerde)
        .add_sink("typed-sink", "out", StringSerde, I64Serde, &["src"])
        .add_sink("orphan", "out2", StringSerde, StringSerde, &["nowhere"])
        .add_processor("p", || Upper, &["src"], &["missing-store"])
        .add_sink("dup", "x", StringSerde, StringSerde, &["p"])
        .add_sink("dup", "y", StringSerde, StringSerde, &["p"]);
    let err = match builder.build() {
        Ok(_) => panic!("an invalid topology was accepted"),
        Err(err) => err,
    };
    let text = err.to_string();
    assert_eq!(err.problems.len(), 5, "{text}");
    assert!(
        text.contains("nodes [\"orphan\"] are not connected to any source"),
        "{text}"
    );
    assert!(text.contains("edge `src` -> `typed-sink`"), "{text}");
    assert!(text.contains("unknown parent `nowhere`"), "{text}");
    assert!(text.contains("unknown store `missing-store`"), "{text}");
    assert!(text.contains("node name `dup` is used twice"), "{text}");
}

struct Upper;

impl Processor for Upper {
    type KeyIn = String;
    type ValueIn = String;
    type KeyOut = String;
    type ValueOut = String;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, String>,
        record: Record<String, String>,
    ) -> Result<(), ProcessError> {
        let upper = record.value.to_uppercase();
        ctx.forward(record.with_value(upper));
        Ok(())
    }
}

/// Sums values per key and, on each wall-clock punctuation, emits the total of all keys.
struct Totals;

impl Processor for Totals {
    type KeyIn = String;
    type ValueIn = String;
    type KeyOut = String;
    type ValueOut = i64;

    fn init(&mut self, ctx: &mut ProcessorContext<'_, String, i64>) -> Result<(), ProcessError> {
        ctx.schedule(Duration::from_secs(10), PunctuationType::WallClockTime);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        record: Record<String, String>,
    ) -> Result<(), ProcessError> {
        let amount: i64 = record
            .value
            .parse()
            .map_err(|e| ProcessError::user(format!("amount `{}`: {e}", record.value)))?;
        let offset = ctx.record_metadata().map(|m| m.offset).unwrap_or(-1);
        let mut store = ctx.key_value_store::<String, i64>("sums")?;
        let sum = store.get(&record.key)?.unwrap_or(0) + amount;
        store.put(&record.key, &sum)?;
        ctx.forward(Record::new(
            format!("{}@{offset}", record.key),
            sum,
            record.timestamp,
        ));
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        _kind: PunctuationType,
        timestamp: i64,
    ) -> Result<(), ProcessError> {
        let total: i64 = ctx
            .key_value_store::<String, i64>("sums")?
            .all()?
            .into_iter()
            .map(|(_, v)| v)
            .sum();
        ctx.forward(Record::new("total".to_owned(), total, timestamp));
        Ok(())
    }
}

fn totals_driver() -> Result<TopologyTestDriver, Box<dyn std::error::Error>> {
    let mut builder = TopologyBuilder::new();
    builder
        .add_source("payments", "payments", StringSerde, StringSerde)
        .add_store(StoreBuilder::rocksdb("sums", StringSerde, I64Serde))
        .add_processor("totals", || Totals, &["payments"], &["sums"])
        .add_sink("out", "sums-out", StringSerde, I64Serde, &["totals"]);
    Ok(TopologyTestDriver::new(builder.build()?)?)
}

#[test]
fn processors_use_stores_metadata_and_wall_clock_punctuation() -> TestResult {
    let mut driver = totals_driver()?;
    for (key, amount) in [("a", "5"), ("b", "7"), ("a", "1")] {
        driver.pipe_input(
            "payments",
            &StringSerde,
            &StringSerde,
            &key.to_owned(),
            &amount.to_owned(),
            0,
        )?;
    }
    driver.advance_wall_clock(Duration::from_secs(9))?;
    let before = driver.read_output("sums-out", &StringSerde, &I64Serde)?;
    let before: Vec<(String, i64)> = before.into_iter().map(|r| (r.key, r.value)).collect();
    assert_eq!(
        before,
        vec![("a@0".into(), 5), ("b@1".into(), 7), ("a@2".into(), 6)]
    );
    driver.advance_wall_clock(Duration::from_secs(1))?;
    let after = driver.read_output("sums-out", &StringSerde, &I64Serde)?;
    assert_eq!(after.len(), 1, "one punctuation after 10 s");
    assert_eq!(
        (after[0].key.as_str(), after[0].value, after[0].timestamp),
        ("total", 13, 10_000)
    );
    Ok(())
}

#[test]
fn processor_errors_name_the_processor_and_cause() -> TestResult {
    let mut driver = totals_driver()?;
    let err = driver
        .pipe_input(
            "payments",
            &StringSerde,
            &StringSerde,
            &"a".to_owned(),
            &"lots".to_owned(),
            0,
        )
        .err()
        .ok_or("a bad amount was accepted")?;
    assert!(
        matches!(err, TaskError::Process { ref node, .. } if node == "totals"),
        "{err}"
    );
    assert!(err.to_string().contains("amount `lots`"), "{err}");
    Ok(())
}

#[test]
fn deserialization_errors_name_topic_partition_and_offset() -> TestResult {
    let mut driver = wordcount()?;
    driver.pipe_raw("lines", None, Some(b"fine"), 0)?;
    let err = driver
        .pipe_raw("lines", None, Some(&[0x66, 0xff, 0xfe]), 0)
        .err()
        .ok_or("invalid UTF-8 was accepted")?;
    let text = err.to_string();
    assert!(
        text.contains("value of the record at lines [0] offset 1")
            && text.contains("invalid UTF-8"),
        "{text}"
    );
    Ok(())
}

#[test]
fn reduce_keeps_a_keys_first_value_and_combines_later_ones() -> TestResult {
    let builder = StreamsBuilder::new();
    builder
        .stream("readings", StringSerde, I64Serde)
        .group_by_key(StringSerde, I64Serde)
        .reduce("max", |a, b| a.max(b))
        .to_stream()
        .to("maxima", StringSerde, Nullable(I64Serde));
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    for (key, value) in [("a", -5), ("b", 2), ("a", -7), ("a", 3)] {
        driver.pipe_input(
            "readings",
            &StringSerde,
            &I64Serde,
            &key.to_owned(),
            &value,
            0,
        )?;
    }
    let out = driver.read_output("maxima", &StringSerde, &I64Serde)?;
    let values: Vec<(String, i64)> = out.into_iter().map(|r| (r.key, r.value)).collect();
    let expected = [("a", -5), ("b", 2), ("a", -5), ("a", 3)];
    let expected: Vec<(String, i64)> = expected
        .iter()
        .map(|(k, v)| ((*k).to_owned(), *v))
        .collect();
    assert_eq!(
        values, expected,
        "a first negative value must not be folded into a default"
    );
    Ok(())
}
