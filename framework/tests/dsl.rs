//! The DSL's shape: fan-out, branches, merge, explicit repartitioning, foreach and operator
//! names, run with the in-memory test driver.

use std::sync::{Arc, Mutex};

use eddy::prelude::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn pairs<K, V>(records: Vec<Record<K, V>>) -> Vec<(K, V)> {
    records.into_iter().map(|r| (r.key, r.value)).collect()
}

fn pipe_lines(driver: &mut TopologyTestDriver, lines: &[&str]) -> TestResult {
    for (i, line) in lines.iter().enumerate() {
        driver.pipe_input(
            "lines",
            &UnitSerde,
            &StringSerde,
            &(),
            &(*line).to_owned(),
            i as i64,
        )?;
    }
    Ok(())
}

/// One stream feeds an echo sink and two aggregations: each sees every record.
#[test]
fn one_stream_feeds_a_sink_and_two_aggregations() -> TestResult {
    let builder = StreamsBuilder::new();
    let words = builder
        .stream("lines", UnitSerde, StringSerde)
        .flat_map_values(|line: String| {
            line.split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        });
    words.to("echo", UnitSerde, StringSerde);
    let grouped = words
        .select_key(|_: &(), w: &String| w.clone())
        .group_by_key(StringSerde, StringSerde);
    grouped
        .count("counts")
        .to_stream()
        .to("counts-out", StringSerde, Nullable(I64Serde));
    grouped
        .aggregate(
            "lengths",
            || 0_i64,
            |_: &String, w: String, total: i64| total + w.len() as i64,
            I64Serde,
        )
        .to_stream()
        .to("lengths-out", StringSerde, Nullable(I64Serde));
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    pipe_lines(&mut driver, &["ab c", "ab"])?;

    let echo: Vec<String> = driver
        .read_output("echo", &UnitSerde, &StringSerde)?
        .into_iter()
        .map(|r| r.value)
        .collect();
    assert_eq!(echo, ["ab", "c", "ab"]);
    assert_eq!(
        pairs(driver.read_output("counts-out", &StringSerde, &I64Serde)?),
        [("ab".into(), 1), ("c".into(), 1), ("ab".into(), 2)]
    );
    assert_eq!(
        pairs(driver.read_output("lengths-out", &StringSerde, &I64Serde)?),
        [("ab".into(), 2), ("c".into(), 1), ("ab".into(), 4)]
    );
    Ok(())
}

/// A record goes to the first branch whose predicate holds, else to the default branch; a
/// split without a default drops what no branch takes. Merging branches restores the stream.
#[test]
fn split_routes_each_record_to_its_first_matching_branch_and_merge_joins_them() -> TestResult {
    let builder = StreamsBuilder::new();
    let amounts = builder.stream("amounts", StringSerde, I64Serde);
    let branches = amounts
        .split("size")
        .branch("large", |_: &String, n: &i64| *n >= 100)
        .branch("even", |_: &String, n: &i64| n % 2 == 0)
        .default_branch("rest");
    assert_eq!(
        branches.names().collect::<Vec<_>>(),
        ["even", "large", "rest"]
    );
    branches["large"].to("large", StringSerde, I64Serde);
    branches["even"].to("even", StringSerde, I64Serde);
    branches["rest"].to("rest", StringSerde, I64Serde);
    branches["large"]
        .merge(&branches["rest"])
        .to("large-or-rest", StringSerde, I64Serde);
    let only_negative = amounts
        .split("sign")
        .branch("negative", |_: &String, n: &i64| *n < 0)
        .no_default_branch();
    assert!(only_negative.get("positive").is_none());
    only_negative["negative"].to("negative", StringSerde, I64Serde);

    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    for (i, n) in [100_i64, 4, 7, 200, -3, 6].into_iter().enumerate() {
        driver.pipe_input("amounts", &StringSerde, &I64Serde, &format!("k{i}"), &n, 0)?;
    }
    let values = |driver: &mut TopologyTestDriver, topic: &str| -> Vec<i64> {
        driver
            .read_output(topic, &StringSerde, &I64Serde)
            .map(|rs| rs.into_iter().map(|r| r.value).collect())
            .unwrap_or_default()
    };
    assert_eq!(values(&mut driver, "large"), [100, 200]);
    assert_eq!(
        values(&mut driver, "even"),
        [4, 6],
        "100 and 200 went to `large` first"
    );
    assert_eq!(values(&mut driver, "rest"), [7, -3]);
    assert_eq!(values(&mut driver, "large-or-rest"), [100, 7, 200, -3]);
    assert_eq!(values(&mut driver, "negative"), [-3]);
    Ok(())
}

/// An explicit repartition re-keys through an internal topic: the records arrive under their
/// new keys, and the topology has a sub-topology on either side of the topic.
#[test]
fn repartition_goes_through_an_internal_topic() -> TestResult {
    let builder = StreamsBuilder::new();
    builder
        .stream("lines", UnitSerde, StringSerde)
        .select_key(|_: &(), line: &String| line.len() as i64)
        .repartition("by-length", I64Serde, StringSerde)
        .to("by-length-out", I64Serde, StringSerde);
    let topology = builder.build()?;
    assert_eq!(topology.sub_topologies().len(), 2);
    let mut driver = TopologyTestDriver::new(topology)?;
    pipe_lines(&mut driver, &["abc", "de"])?;
    assert_eq!(
        pairs(driver.read_output("by-length-out", &I64Serde, &StringSerde)?),
        [(3, "abc".into()), (2, "de".into())]
    );
    Ok(())
}

/// `foreach` sees every record and forwards nothing; `named` renames an operator, and a name
/// used twice fails the build naming it.
#[test]
fn foreach_sees_every_record_and_names_are_checked() -> TestResult {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let builder = StreamsBuilder::new();
    let lines = builder
        .stream("lines", UnitSerde, StringSerde)
        .named("lines-in");
    let sink = Arc::clone(&seen);
    lines
        .map_values(|l: String| l.to_uppercase())
        .named("shout")
        .foreach(move |_: &(), l: &String| {
            if let Ok(mut seen) = sink.lock() {
                seen.push(l.clone());
            }
        });
    let topology = builder.build()?;
    let description = format!("{topology:?}");
    assert!(description.contains("shout") && description.contains("lines-in"));
    let mut driver = TopologyTestDriver::new(topology)?;
    pipe_lines(&mut driver, &["a", "b"])?;
    assert_eq!(*seen.lock().map_err(|e| e.to_string())?, ["A", "B"]);

    let builder = StreamsBuilder::new();
    let lines = builder.stream("lines", UnitSerde, StringSerde);
    let _ = lines.map_values(|l: String| l).named("twice");
    let _ = lines.filter(|_: &(), _: &String| true).named("twice");
    let err = builder.build().err().ok_or("a name used twice must fail")?;
    assert!(err.to_string().contains("`twice`"), "{err}");
    Ok(())
}

/// A source's timestamp extractor sets each record's event time from its value; stream time
/// follows the extracted times; a negative event time (extracted, or a record's missing
/// Kafka timestamp) is refused naming the record.
#[test]
fn event_time_comes_from_the_extractor_and_negative_times_are_refused() -> TestResult {
    let builder = StreamsBuilder::new();
    let times = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&times);
    builder
        .stream_with_timestamps(
            "clicks",
            StringSerde,
            I64Serde,
            |_: &String, at: &i64, _| *at,
        )
        .process("stream-time", move || StreamTime(Arc::clone(&seen)), &[])
        .to("clicks-out", StringSerde, I64Serde);
    builder
        .stream("plain", StringSerde, I64Serde)
        .to("plain-out", StringSerde, I64Serde);
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    for at in [50_i64, 20, 70] {
        driver.pipe_input("clicks", &StringSerde, &I64Serde, &"u".to_owned(), &at, 1)?;
    }
    let out = driver.read_output("clicks-out", &StringSerde, &I64Serde)?;
    let stamps: Vec<i64> = out.iter().map(|r| r.timestamp).collect();
    assert_eq!(stamps, [50, 20, 70], "each record carries its value's time");
    assert_eq!(
        *times.lock().map_err(|e| e.to_string())?,
        [50, 50, 70],
        "stream time is the largest event time seen, not the Kafka timestamp"
    );

    let refused = driver
        .pipe_input("clicks", &StringSerde, &I64Serde, &"u".to_owned(), &-5, 1)
        .err()
        .ok_or("a negative extracted time must be refused")?;
    let message = refused.to_string();
    assert!(
        message.contains("clicks [0]") && message.contains("timestamp -5"),
        "{message}"
    );
    let refused = driver
        .pipe_input("plain", &StringSerde, &I64Serde, &"u".to_owned(), &1, -1)
        .err()
        .ok_or("a record without a timestamp must be refused")?;
    assert!(
        refused.to_string().contains("no valid event time"),
        "{refused}"
    );
    assert!(driver
        .read_output("plain-out", &StringSerde, &I64Serde)?
        .is_empty());
    Ok(())
}

/// Records the task's stream time when each record arrives and passes the record on.
struct StreamTime(Arc<Mutex<Vec<i64>>>);

impl Processor for StreamTime {
    type KeyIn = String;
    type ValueIn = i64;
    type KeyOut = String;
    type ValueOut = i64;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, String, i64>,
        record: Record<String, i64>,
    ) -> Result<(), ProcessError> {
        if let Ok(mut times) = self.0.lock() {
            times.push(ctx.stream_time());
        }
        ctx.forward(record);
        Ok(())
    }
}
