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
