//! Stream-table joins with a grace period over a versioned table: a stream record waits
//! until the stream's time has passed it by the grace, then meets the version valid at its
//! time, including versions that arrived after it.

use std::time::Duration;

use eddy::prelude::*;

type R<T> = Result<T, Box<dyn std::error::Error>>;

/// Clicks (user → click id) left-joined with a versioned table of regions after `grace`.
fn driver(grace_ms: u64) -> R<TopologyTestDriver> {
    let builder = StreamsBuilder::new();
    let regions = builder.versioned_table(
        "regions",
        StringSerde,
        StringSerde,
        "regions",
        Duration::from_secs(60),
    );
    builder
        .stream("clicks", StringSerde, StringSerde)
        .left_join_with_grace(
            &regions,
            TableJoinGrace::new(
                Duration::from_millis(grace_ms),
                "clicks-waiting",
                StringSerde,
                StringSerde,
            ),
            |c: &String, r: Option<&String>| format!("{c}@{}", r.map_or("-", String::as_str)),
        )
        .to("out", StringSerde, StringSerde);
    Ok(TopologyTestDriver::new(builder.build()?)?)
}

fn region(d: &mut TopologyTestDriver, user: &str, region: &str, at: i64) -> R<()> {
    d.pipe_raw(
        "regions",
        Some(user.as_bytes()),
        Some(region.as_bytes()),
        at,
    )?;
    Ok(())
}

fn click(d: &mut TopologyTestDriver, user: &str, id: &str, at: i64) -> R<()> {
    d.pipe_raw("clicks", Some(user.as_bytes()), Some(id.as_bytes()), at)?;
    Ok(())
}

fn out(d: &mut TopologyTestDriver) -> R<Vec<(String, i64)>> {
    Ok(d.read_output("out", &StringSerde, &StringSerde)?
        .into_iter()
        .map(|r| (r.value, r.timestamp))
        .collect())
}

#[test]
fn a_table_version_arriving_within_the_grace_still_meets_the_earlier_click() -> R<()> {
    let mut d = driver(50)?;
    region(&mut d, "u", "eu", 0)?;
    click(&mut d, "u", "c100", 100)?;
    assert!(out(&mut d)?.is_empty(), "the click waits for the grace");
    region(&mut d, "u", "us", 90)?; // late, but valid from 90
    click(&mut d, "v", "c140", 140)?;
    assert!(
        out(&mut d)?.is_empty(),
        "stream time 140 has not passed 100 + 50"
    );
    click(&mut d, "v", "c150", 150)?;
    assert_eq!(out(&mut d)?, [("c100@us".to_owned(), 100)]);
    Ok(())
}

#[test]
fn waiting_records_come_out_in_time_order_and_all_at_the_end_of_input() -> R<()> {
    let mut d = driver(50)?;
    region(&mut d, "u", "eu", 0)?;
    click(&mut d, "u", "c120", 120)?;
    click(&mut d, "u", "c100", 100)?; // out of order, within the grace
    click(&mut d, "u", "c20", 20)?; // beyond the grace: joins at once
    assert_eq!(out(&mut d)?, [("c20@eu".to_owned(), 20)]);
    click(&mut d, "w", "c171", 171)?;
    assert_eq!(
        out(&mut d)?,
        [("c100@eu".to_owned(), 100), ("c120@eu".to_owned(), 120)]
    );
    d.end_input()?;
    assert_eq!(out(&mut d)?, [("c171@-".to_owned(), 171)]);
    Ok(())
}

#[test]
fn a_grace_needs_a_versioned_table() -> R<()> {
    let builder = StreamsBuilder::new();
    let regions = builder.table("regions", StringSerde, StringSerde, "regions");
    builder
        .stream("clicks", StringSerde, StringSerde)
        .join_with_grace(
            &regions,
            TableJoinGrace::new(Duration::from_millis(5), "w", StringSerde, StringSerde),
            |c: &String, r: &String| format!("{c}{r}"),
        )
        .to("out", StringSerde, StringSerde);
    let err = builder.build().err().ok_or("the build should fail")?;
    assert!(err.to_string().contains("versioned table"), "{err}");
    Ok(())
}
