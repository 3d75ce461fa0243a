//! Windowed aggregations through the test driver: window boundaries, hopping overlap, grace,
//! late records (metric and late topic), final-only emission, expiry, and a property test
//! against a straightforward recomputation from the input.

use std::collections::BTreeMap;
use std::time::Duration;

use eddy::dsl::{LATE_OPERATOR_HEADER, LATE_OPERATOR_TIME_HEADER, LATE_WINDOW_HEADER};
use eddy::prelude::*;
use proptest::prelude::*;

type R<T> = Result<T, Box<dyn std::error::Error>>;

const OPERATOR: &str = "counts-window-aggregate";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// `clicks` (user → unit) counted per user and window into `counts`, written to `out`.
fn driver(windows: TimeWindows, emit: Emit, late_topic: bool) -> R<TopologyTestDriver> {
    let builder = StreamsBuilder::new();
    let mut windowed = builder
        .stream("clicks", StringSerde, UnitSerde)
        .group_by_key(StringSerde, UnitSerde)
        .windowed_by(windows)
        .emit(emit);
    if late_topic {
        windowed = windowed.late_records_to("late");
    }
    windowed.count("counts").to_stream().to(
        "out",
        WindowedSerde::new(StringSerde),
        Nullable(I64Serde),
    );
    Ok(TopologyTestDriver::new(builder.build()?)?)
}

fn click(driver: &mut TopologyTestDriver, user: &str, at: i64) -> R<()> {
    driver.pipe_input(
        "clicks",
        &StringSerde,
        &UnitSerde,
        &user.to_owned(),
        &(),
        at,
    )?;
    Ok(())
}

/// One output record: `(user, start, end, count, timestamp)`.
type Out = (String, i64, i64, i64, i64);

fn output(driver: &mut TopologyTestDriver) -> R<Vec<Out>> {
    Ok(driver
        .read_output("out", &WindowedSerde::new(StringSerde), &I64Serde)?
        .into_iter()
        .map(|r| {
            (
                r.key.key,
                r.key.window.start,
                r.key.window.end,
                r.value,
                r.timestamp,
            )
        })
        .collect())
}

#[test]
fn tumbling_windows_include_their_start_and_exclude_their_end() -> R<()> {
    let mut d = driver(
        TimeWindows::of(ms(10)).grace(ms(100)),
        Emit::OnUpdate,
        false,
    )?;
    for at in [0, 9, 10, 19, 20] {
        click(&mut d, "a", at)?;
    }
    assert_eq!(
        output(&mut d)?,
        vec![
            ("a".into(), 0, 10, 1, 0),
            ("a".into(), 0, 10, 2, 9),
            ("a".into(), 10, 20, 1, 10),
            ("a".into(), 10, 20, 2, 19),
            ("a".into(), 20, 30, 1, 20),
        ]
    );
    Ok(())
}

#[test]
fn hopping_windows_update_every_window_a_record_falls_into() -> R<()> {
    let windows = TimeWindows::of(ms(10)).advance_by(ms(5)).grace(ms(100));
    let mut d = driver(windows, Emit::OnUpdate, false)?;
    click(&mut d, "a", 7)?;
    click(&mut d, "a", 12)?;
    assert_eq!(
        output(&mut d)?,
        vec![
            ("a".into(), 0, 10, 1, 7),
            ("a".into(), 5, 15, 1, 7),
            ("a".into(), 5, 15, 2, 12),
            ("a".into(), 10, 20, 1, 12),
        ]
    );
    assert_eq!(
        d.window_fetch::<String, i64>("counts", &"a".to_owned(), 0, 100)
            .unwrap(),
        vec![(0, 1), (5, 2), (10, 1)]
    );
    Ok(())
}

#[test]
fn records_within_grace_count_and_records_beyond_it_go_to_the_late_topic() -> R<()> {
    let mut d = driver(TimeWindows::of(ms(10)).grace(ms(5)), Emit::OnUpdate, true)?;
    click(&mut d, "a", 3)?;
    click(&mut d, "a", 14)?; // operator time 14: [0, 10) open until 15
    click(&mut d, "a", 8)?; // within grace
    click(&mut d, "b", 15)?; // operator time 15 closes [0, 10)
    click(&mut d, "a", 9)?; // late: its only window closed
    assert_eq!(
        output(&mut d)?,
        vec![
            ("a".into(), 0, 10, 1, 3),
            ("a".into(), 10, 20, 1, 14),
            ("a".into(), 0, 10, 2, 8),
            ("b".into(), 10, 20, 1, 15),
        ]
    );
    assert_eq!(d.late_records(OPERATOR), 1);
    let late = d.read_output("late", &StringSerde, &UnitSerde).unwrap();
    assert_eq!(late.len(), 1);
    assert_eq!((late[0].key.as_str(), late[0].timestamp), ("a", 9));
    let header = |name: &str| -> Vec<String> {
        late[0]
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
            .collect()
    };
    assert_eq!(header(LATE_OPERATOR_HEADER), vec![OPERATOR.to_owned()]);
    assert_eq!(header(LATE_OPERATOR_TIME_HEADER), vec!["15".to_owned()]);
    assert_eq!(header(LATE_WINDOW_HEADER), vec!["0,10".to_owned()]);
    Ok(())
}

#[test]
fn a_hopping_record_late_for_one_window_still_counts_in_the_open_one() -> R<()> {
    let windows = TimeWindows::of(ms(10)).advance_by(ms(5));
    let mut d = driver(windows, Emit::OnUpdate, true)?;
    click(&mut d, "a", 20)?; // closes every window ending at or before 20
    click(&mut d, "a", 12)?; // [5, 15) closed, [10, 20) closed too: both missed
    click(&mut d, "a", 17)?; // [10, 20) closed, [15, 25) open
    let out = output(&mut d)?;
    assert_eq!(
        out,
        vec![
            ("a".into(), 15, 25, 1, 20),
            ("a".into(), 20, 30, 1, 20),
            ("a".into(), 15, 25, 2, 17),
        ]
    );
    assert_eq!(d.late_records(OPERATOR), 2);
    let late = d.read_output("late", &StringSerde, &UnitSerde).unwrap();
    let windows: Vec<Vec<String>> = late
        .iter()
        .map(|r| {
            r.headers
                .iter()
                .filter(|(n, _)| n == LATE_WINDOW_HEADER)
                .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        windows,
        vec![
            vec!["5,15".to_owned(), "10,20".to_owned()],
            vec!["10,20".to_owned()]
        ]
    );
    Ok(())
}

#[test]
fn late_records_without_a_late_topic_are_counted_not_written() -> R<()> {
    let mut d = driver(TimeWindows::of(ms(10)), Emit::OnUpdate, false)?;
    click(&mut d, "a", 10)?;
    click(&mut d, "a", 5)?;
    assert_eq!(output(&mut d)?.len(), 1);
    assert_eq!(d.late_records(OPERATOR), 1);
    assert!(d
        .read_output("late", &StringSerde, &UnitSerde)
        .unwrap()
        .is_empty());
    Ok(())
}

#[test]
fn final_emission_sends_each_window_once_when_it_closes() -> R<()> {
    let mut d = driver(
        TimeWindows::of(ms(10)).grace(ms(5)),
        Emit::OnWindowClose,
        false,
    )?;
    click(&mut d, "b", 2)?;
    click(&mut d, "a", 4)?;
    click(&mut d, "a", 12)?;
    click(&mut d, "a", 9)?; // within grace
    assert!(output(&mut d)?.is_empty(), "nothing closed before 15");
    click(&mut d, "a", 15)?; // closes [0, 10)
    assert_eq!(
        output(&mut d)?,
        vec![("a".into(), 0, 10, 2, 9), ("b".into(), 0, 10, 1, 9)],
        "final results in start then key order, stamped with the window's last millisecond"
    );
    click(&mut d, "a", 16)?;
    assert!(output(&mut d)?.is_empty(), "[0, 10) is not sent twice");
    click(&mut d, "c", 100)?; // closes [10, 20) and every later window up to 85
    assert_eq!(output(&mut d)?, vec![("a".into(), 10, 20, 3, 19)]);
    Ok(())
}

#[test]
fn final_emission_of_hopping_windows_closes_them_in_start_order() -> R<()> {
    let windows = TimeWindows::of(ms(10)).advance_by(ms(5));
    let mut d = driver(windows, Emit::OnWindowClose, false)?;
    click(&mut d, "a", 7)?;
    click(&mut d, "a", 12)?;
    click(&mut d, "a", 30)?;
    let starts: Vec<(i64, i64)> = output(&mut d)?.iter().map(|o| (o.1, o.3)).collect();
    assert_eq!(starts, vec![(0, 1), (5, 2), (10, 1)]);
    Ok(())
}

#[test]
fn windows_past_retention_are_dropped_a_segment_at_a_time() -> R<()> {
    // Retention 2 min with segments of one minute: windows starting before the minute
    // boundary below (operator time − retention) are gone.
    let windows = TimeWindows::of(ms(1_000)).retain(Duration::from_secs(120));
    let mut d = driver(windows, Emit::OnUpdate, false)?;
    click(&mut d, "a", 500)?;
    click(&mut d, "a", 61_500)?;
    click(&mut d, "a", 121_000)?;
    let all = |d: &mut TopologyTestDriver| {
        d.window_fetch::<String, i64>("counts", &"a".to_owned(), 0, 1_000_000)
            .unwrap()
    };
    assert_eq!(
        all(&mut d).len(),
        3,
        "121 000 − 120 000 keeps the first segment"
    );
    click(&mut d, "b", 181_000)?;
    assert_eq!(
        all(&mut d),
        vec![(61_000, 1), (121_000, 1)],
        "61 000 rounds down to the 60 000 boundary: [0, 60 000) dropped"
    );
    Ok(())
}

/// What a windowed count must produce, computed without stores: each record in input order
/// moves the operator time; it counts in each of its windows still open (end > time −
/// grace), else it is late for that window.
fn recompute(
    records: &[(u8, i64)],
    size: i64,
    advance: i64,
    grace: i64,
) -> (BTreeMap<(u8, i64), i64>, u64, i64) {
    let mut counts = BTreeMap::new();
    let mut late = 0;
    let mut time = i64::MIN;
    for &(key, at) in records {
        time = time.max(at);
        let mut missed = false;
        let mut start = 0;
        while start <= at {
            if start + size > at {
                if start + size > time - grace {
                    *counts.entry((key, start)).or_insert(0) += 1;
                } else {
                    missed = true;
                }
            }
            start += advance;
        }
        late += u64::from(missed);
    }
    (counts, late, time - grace)
}

fn fail(e: Box<dyn std::error::Error>) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn windowed_counts_equal_a_recomputation_from_the_input(
        records in proptest::collection::vec((0_u8..4, 0_i64..400), 1..60),
        size in 1_i64..50,
        advance_div in 1_i64..4,
        grace in 0_i64..40,
        final_only in any::<bool>(),
    ) {
        let advance = (size / advance_div).max(1);
        let windows = TimeWindows::of(ms(size as u64))
            .advance_by(ms(advance as u64))
            .grace(ms(grace as u64));
        let emit = if final_only { Emit::OnWindowClose } else { Emit::OnUpdate };
        let mut d = driver(windows, emit, true).map_err(fail)?;
        for &(key, at) in &records {
            click(&mut d, &key.to_string(), at).map_err(fail)?;
        }
        let (expected, late, close) = recompute(&records, size, advance, grace);
        let mut latest: BTreeMap<(u8, i64), i64> = BTreeMap::new();
        let mut sent: BTreeMap<(u8, i64), usize> = BTreeMap::new();
        for (user, start, end, count, _) in output(&mut d).map_err(fail)? {
            prop_assert_eq!(end - start, size);
            let key = (user.parse::<u8>().unwrap(), start);
            latest.insert(key, count);
            *sent.entry(key).or_default() += 1;
        }
        if final_only {
            let closed: BTreeMap<(u8, i64), i64> = expected
                .iter()
                .filter(|((_, start), _)| start + size <= close)
                .map(|(k, v)| (*k, *v))
                .collect();
            prop_assert_eq!(&latest, &closed);
            prop_assert!(sent.values().all(|&n| n == 1), "each window once: {:?}", sent);
        } else {
            prop_assert_eq!(&latest, &expected);
        }
        prop_assert_eq!(d.late_records(OPERATOR), late);
        let routed = d.read_output("late", &StringSerde, &UnitSerde).unwrap().len();
        prop_assert_eq!(routed as u64, late);
    }
}

#[test]
fn idle_input_closes_windows_only_with_the_policy_and_after_its_timeout() -> R<()> {
    let idle = |policy: Option<Duration>| -> R<TopologyTestDriver> {
        let builder = StreamsBuilder::new();
        let mut windowed = builder
            .stream("clicks", StringSerde, UnitSerde)
            .group_by_key(StringSerde, UnitSerde)
            .windowed_by(TimeWindows::of(ms(1_000)).grace(ms(500)))
            .emit(Emit::OnWindowClose);
        if let Some(after) = policy {
            windowed = windowed.advance_when_idle(after);
        }
        windowed.count("counts").to_stream().to(
            "out",
            WindowedSerde::new(StringSerde),
            Nullable(I64Serde),
        );
        Ok(TopologyTestDriver::new(builder.build()?)?)
    };
    for policy in [None, Some(Duration::from_secs(5))] {
        let mut d = idle(policy)?;
        click(&mut d, "a", 1_200)?;
        click(&mut d, "a", 2_100)?;
        d.advance_wall_clock(Duration::from_millis(4_999))?;
        assert!(output(&mut d)?.is_empty(), "not idle long enough");
        d.advance_wall_clock(Duration::from_millis(1))?;
        let out = output(&mut d)?;
        match policy {
            None => {
                d.advance_wall_clock(Duration::from_secs(3_600))?;
                assert!(
                    out.is_empty() && output(&mut d)?.is_empty(),
                    "off by default"
                );
                assert_eq!(d.idle_advances(OPERATOR), 0);
            }
            Some(_) => {
                // Time flowed 5 s past 2 100: both windows are over.
                assert_eq!(
                    out,
                    vec![
                        ("a".into(), 1_000, 2_000, 1, 1_999),
                        ("a".into(), 2_000, 3_000, 1, 2_999)
                    ]
                );
                assert_eq!(d.idle_advances(OPERATOR), 1);
                click(&mut d, "a", 2_500)?;
                assert_eq!(
                    d.late_records(OPERATOR),
                    1,
                    "the advanced time is the operator's"
                );
            }
        }
    }
    Ok(())
}

#[test]
fn the_end_of_input_closes_every_window_and_later_records_are_late() -> R<()> {
    let mut d = driver(
        TimeWindows::of(ms(10)).grace(ms(5)),
        Emit::OnWindowClose,
        true,
    )?;
    click(&mut d, "a", 4)?;
    click(&mut d, "b", 12)?;
    click(&mut d, "a", 14)?;
    assert!(output(&mut d)?.is_empty(), "nothing closed before 15");
    d.end_input()?;
    assert_eq!(
        output(&mut d)?,
        vec![
            ("a".into(), 0, 10, 1, 9),
            ("a".into(), 10, 20, 1, 19),
            ("b".into(), 10, 20, 1, 19)
        ],
    );
    d.end_input()?;
    assert!(
        output(&mut d)?.is_empty(),
        "a second end emits nothing again"
    );
    click(&mut d, "a", 25)?;
    assert!(output(&mut d)?.is_empty());
    assert_eq!(
        d.late_records(OPERATOR),
        1,
        "after the end every record is late"
    );
    Ok(())
}

#[test]
fn the_end_of_input_reaches_windows_behind_a_repartition_after_their_last_records() -> R<()> {
    // Clicks keyed by page are regrouped by user: the count runs in a second sub-topology,
    // which must see the first's last records before its own end.
    let builder = StreamsBuilder::new();
    builder
        .stream("clicks", StringSerde, StringSerde)
        .select_key(|_page: &String, user: &String| user.clone())
        .group_by_key(StringSerde, StringSerde)
        .windowed_by(TimeWindows::of(ms(10)))
        .emit(Emit::OnWindowClose)
        .count("by-user")
        .to_stream()
        .to("out", WindowedSerde::new(StringSerde), Nullable(I64Serde));
    let mut d = TopologyTestDriver::new(builder.build()?)?;
    for (page, user, at) in [("p1", "u", 1), ("p2", "u", 2), ("p1", "v", 3)] {
        d.pipe_input(
            "clicks",
            &StringSerde,
            &StringSerde,
            &page.to_owned(),
            &user.to_owned(),
            at,
        )?;
    }
    assert!(output(&mut d)?.is_empty());
    d.end_input()?;
    assert_eq!(
        output(&mut d)?,
        vec![("u".into(), 0, 10, 2, 9), ("v".into(), 0, 10, 1, 9)]
    );
    Ok(())
}
