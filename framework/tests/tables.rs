//! Tables through the test driver: a table from a topic keeps the latest value per key and
//! deletes on tombstones; map_values and filter keep deletions as deletions; a filtered-out
//! update deletes downstream; aggregations are tables whose changes are never deletions.

use eddy::prelude::*;

type R<T> = Result<T, Box<dyn std::error::Error>>;

fn put(d: &mut TopologyTestDriver, key: &str, value: Option<&str>, at: i64) -> R<()> {
    d.pipe_raw("users", Some(key.as_bytes()), value.map(str::as_bytes), at)?;
    Ok(())
}

fn changes(d: &mut TopologyTestDriver, topic: &str) -> R<Vec<(String, Option<String>)>> {
    Ok(d.read_output(topic, &StringSerde, &Nullable(StringSerde))?
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect())
}

#[test]
fn a_table_from_a_topic_keeps_the_latest_value_and_tombstones_delete() -> R<()> {
    let builder = StreamsBuilder::new();
    builder
        .table("users", StringSerde, StringSerde, "users")
        .to_stream()
        .to("changes", StringSerde, Nullable(StringSerde));
    let mut d = TopologyTestDriver::new(builder.build()?)?;
    put(&mut d, "alice", Some("eu"), 1)?;
    put(&mut d, "bob", Some("us"), 2)?;
    put(&mut d, "alice", Some("apac"), 3)?;
    put(&mut d, "bob", None, 4)?;
    assert_eq!(
        d.store_get::<String, String>("users", &"alice".to_owned())?,
        Some("apac".to_owned())
    );
    assert_eq!(
        d.store_get::<String, String>("users", &"bob".to_owned())?,
        None,
        "the tombstone deleted bob"
    );
    assert_eq!(
        changes(&mut d, "changes")?,
        vec![
            ("alice".into(), Some("eu".into())),
            ("bob".into(), Some("us".into())),
            ("alice".into(), Some("apac".into())),
            ("bob".into(), None),
        ]
    );
    Ok(())
}

#[test]
fn map_values_and_filter_keep_deletions_and_filtering_out_deletes() -> R<()> {
    let builder = StreamsBuilder::new();
    builder
        .table("users", StringSerde, StringSerde, "users")
        .map_values(|region: String| region.to_uppercase())
        .filter(|_, region: &String| region != "TEST")
        .to_stream()
        .to("regions", StringSerde, Nullable(StringSerde));
    let mut d = TopologyTestDriver::new(builder.build()?)?;
    put(&mut d, "alice", Some("eu"), 1)?;
    put(&mut d, "alice", Some("test"), 2)?;
    put(&mut d, "carol", Some("us"), 3)?;
    put(&mut d, "carol", None, 4)?;
    assert_eq!(
        changes(&mut d, "regions")?,
        vec![
            ("alice".into(), Some("EU".into())),
            ("alice".into(), None),
            ("carol".into(), Some("US".into())),
            ("carol".into(), None),
        ]
    );
    Ok(())
}

#[test]
fn a_table_value_that_does_not_decode_is_a_deserialization_error_naming_the_record() -> R<()> {
    let builder = StreamsBuilder::new();
    builder
        .table("scores", StringSerde, I64Serde, "scores")
        .to_stream()
        .to("out", StringSerde, Nullable(I64Serde));
    let mut d = TopologyTestDriver::new(builder.build()?)?;
    let err = d
        .pipe_raw("scores", Some(b"k"), Some(b"abc"), 1)
        .expect_err("three bytes are not an i64");
    let text = err.to_string();
    assert!(text.contains("scores") && text.contains("value"), "{text}");
    Ok(())
}

#[test]
fn an_aggregation_is_a_table_whose_changes_are_updates() -> R<()> {
    let builder = StreamsBuilder::new();
    builder
        .stream("users", StringSerde, StringSerde)
        .group_by_key(StringSerde, StringSerde)
        .count("logins")
        .filter(|_, n: &i64| n % 2 == 1)
        .map_values(|n: i64| n.to_string())
        .to_stream()
        .to("odd-logins", StringSerde, Nullable(StringSerde));
    let mut d = TopologyTestDriver::new(builder.build()?)?;
    for at in 0..3 {
        put(&mut d, "alice", Some("x"), at)?;
    }
    assert_eq!(
        changes(&mut d, "odd-logins")?,
        vec![
            ("alice".into(), Some("1".into())),
            ("alice".into(), None),
            ("alice".into(), Some("3".into())),
        ]
    );
    Ok(())
}

/// `names` and `regions` joined by `kind`, results (key, row) as the changes come.
fn table_join(
    kind: &str,
    steps: &[(&str, &str, Option<&str>)],
) -> R<Vec<(String, Option<String>)>> {
    let builder = StreamsBuilder::new();
    let names = builder.table("names", StringSerde, StringSerde, "names");
    let regions = builder.table("regions", StringSerde, StringSerde, "regions");
    let show = |n: Option<&String>, r: Option<&String>| {
        format!(
            "{}@{}",
            n.map_or("-", String::as_str),
            r.map_or("-", String::as_str)
        )
    };
    let joined = match kind {
        "inner" => names.join(&regions, "rows", StringSerde, move |n, r| {
            show(Some(n), Some(r))
        }),
        "left" => names.left_join(&regions, "rows", StringSerde, move |n, r| show(Some(n), r)),
        _ => names.outer_join(&regions, "rows", StringSerde, show),
    };
    joined
        .to_stream()
        .to("rows-out", StringSerde, Nullable(StringSerde));
    let mut d = TopologyTestDriver::new(builder.build()?)?;
    for (i, (topic, key, value)) in steps.iter().enumerate() {
        d.pipe_raw(
            topic,
            Some(key.as_bytes()),
            value.map(str::as_bytes),
            i as i64,
        )?;
    }
    changes(&mut d, "rows-out")
}

const STEPS: &[(&str, &str, Option<&str>)] = &[
    ("names", "u1", Some("ann")),
    ("regions", "u1", Some("eu")),
    ("regions", "u2", Some("us")),
    ("names", "u1", Some("anne")),
    ("regions", "u1", None),
    ("names", "u1", None),
    ("regions", "u2", None),
];

#[test]
fn an_inner_table_join_has_a_row_while_both_sides_hold_the_key() -> R<()> {
    assert_eq!(
        table_join("inner", STEPS)?,
        vec![
            ("u1".into(), Some("ann@eu".into())),
            ("u1".into(), Some("anne@eu".into())),
            ("u1".into(), None),
        ],
        "no deletion is sent for a row that never existed"
    );
    Ok(())
}

#[test]
fn a_left_table_join_has_a_row_while_the_left_side_holds_the_key() -> R<()> {
    assert_eq!(
        table_join("left", STEPS)?,
        vec![
            ("u1".into(), Some("ann@-".into())),
            ("u1".into(), Some("ann@eu".into())),
            ("u1".into(), Some("anne@eu".into())),
            ("u1".into(), Some("anne@-".into())),
            ("u1".into(), None),
        ]
    );
    Ok(())
}

#[test]
fn an_outer_table_join_has_a_row_while_either_side_holds_the_key() -> R<()> {
    assert_eq!(
        table_join("outer", STEPS)?,
        vec![
            ("u1".into(), Some("ann@-".into())),
            ("u1".into(), Some("ann@eu".into())),
            ("u2".into(), Some("-@us".into())),
            ("u1".into(), Some("anne@eu".into())),
            ("u1".into(), Some("anne@-".into())),
            ("u1".into(), None),
            ("u2".into(), None),
        ]
    );
    Ok(())
}

#[test]
fn joining_a_table_that_is_not_materialized_fails_the_build_naming_the_join() -> R<()> {
    let builder = StreamsBuilder::new();
    let names = builder.table("names", StringSerde, StringSerde, "names");
    let regions = builder
        .table("regions", StringSerde, StringSerde, "regions")
        .filter(|_, r: &String| r != "test");
    names.join(&regions, "rows", StringSerde, |n: &String, r: &String| {
        format!("{n}{r}")
    });
    let err = builder.build().err().ok_or("the build should fail")?;
    assert!(err.to_string().contains("table join `rows`"), "{err}");
    Ok(())
}

/// Clicks joined with a versioned table of regions as of each click's time.
fn versioned_join(history_ms: u64) -> R<TopologyTestDriver> {
    let builder = StreamsBuilder::new();
    let regions = builder.versioned_table(
        "regions",
        StringSerde,
        StringSerde,
        "regions",
        std::time::Duration::from_millis(history_ms),
    );
    builder
        .stream("clicks", StringSerde, StringSerde)
        .left_join(&regions, |c: &String, r: Option<&String>| {
            format!("{c}@{}", r.map_or("-", String::as_str))
        })
        .to("out", StringSerde, StringSerde);
    regions
        .to_stream()
        .to("region-changes", StringSerde, Nullable(StringSerde));
    Ok(TopologyTestDriver::new(builder.build()?)?)
}

fn joined(d: &mut TopologyTestDriver) -> R<Vec<String>> {
    Ok(d.read_output("out", &StringSerde, &StringSerde)?
        .into_iter()
        .map(|r| r.value)
        .collect())
}

#[test]
fn a_versioned_table_answers_as_of_each_stream_records_time() -> R<()> {
    let mut d = versioned_join(1_000)?;
    d.pipe_raw("regions", Some(b"u"), Some(b"eu"), 10)?;
    d.pipe_raw("regions", Some(b"u"), Some(b"us"), 20)?;
    d.pipe_raw("regions", Some(b"u"), Some(b"apac"), 12)?; // out of order: fills in history
    d.pipe_raw("regions", Some(b"u"), None, 30)?; // deleted from 30 on
    for (click, at) in [
        ("c5", 5),
        ("c10", 10),
        ("c15", 15),
        ("c25", 25),
        ("c35", 35),
    ] {
        d.pipe_raw("clicks", Some(b"u"), Some(click.as_bytes()), at)?;
    }
    assert_eq!(
        joined(&mut d)?,
        ["c5@-", "c10@eu", "c15@apac", "c25@us", "c35@-"],
        "each click meets the region valid at its time"
    );
    let changes = changes(&mut d, "region-changes")?;
    assert_eq!(
        changes,
        vec![
            ("u".into(), Some("eu".into())),
            ("u".into(), Some("us".into())),
            ("u".into(), None),
        ],
        "an update older than the newest version is not a change of the table"
    );
    Ok(())
}

#[test]
fn versions_older_than_the_history_are_forgotten_but_the_value_then_valid_is_kept() -> R<()> {
    let mut d = versioned_join(100)?;
    d.pipe_raw("regions", Some(b"u"), Some(b"v1"), 0)?;
    d.pipe_raw("regions", Some(b"u"), Some(b"v2"), 50)?;
    d.pipe_raw("regions", Some(b"u"), Some(b"v3"), 100)?;
    d.pipe_raw("regions", Some(b"u"), Some(b"v4"), 300)?; // history reaches back to 200
    for (click, at) in [("c10", 10), ("c60", 60), ("c250", 250), ("c310", 310)] {
        d.pipe_raw("clicks", Some(b"u"), Some(click.as_bytes()), at)?;
    }
    assert_eq!(
        joined(&mut d)?,
        ["c10@-", "c60@-", "c250@v3", "c310@v4"],
        "v3 is still the value as of 250; v1 and v2 are gone"
    );
    Ok(())
}
