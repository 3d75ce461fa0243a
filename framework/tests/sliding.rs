//! Sliding windows through the test driver: windows end at records and start right after
//! them, both ends inclusive; final results once the operator's time passes a window's end
//! plus grace; late records; and a property test against a recomputation from the
//! definition.

use std::collections::BTreeMap;
use std::time::Duration;

use eddy::prelude::*;
use proptest::prelude::*;

type R<T> = Result<T, Box<dyn std::error::Error>>;

const OPERATOR: &str = "counts-sliding-aggregate";

fn driver(windows: SlidingWindows, emit: Emit) -> R<TopologyTestDriver> {
    let builder = StreamsBuilder::new();
    builder
        .stream("clicks", StringSerde, UnitSerde)
        .group_by_key(StringSerde, UnitSerde)
        .windowed_by_sliding(windows)
        .emit(emit)
        .late_records_to("late")
        .count("counts")
        .to_stream()
        .to("out", WindowedSerde::new(StringSerde), Nullable(I64Serde));
    Ok(TopologyTestDriver::new(builder.build()?)?)
}

fn click(d: &mut TopologyTestDriver, user: &str, at: i64) -> R<()> {
    d.pipe_input(
        "clicks",
        &StringSerde,
        &UnitSerde,
        &user.to_owned(),
        &(),
        at,
    )?;
    Ok(())
}

/// `(user, start, end, count)` of each output record.
fn output(d: &mut TopologyTestDriver) -> R<Vec<(String, i64, i64, i64)>> {
    Ok(
        d.read_output("out", &WindowedSerde::new(StringSerde), &Nullable(I64Serde))?
            .into_iter()
            .map(|r| {
                (
                    r.key.key,
                    r.key.window.start,
                    r.key.window.end,
                    r.value.unwrap_or(-1),
                )
            })
            .collect(),
    )
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn each_record_ends_a_window_and_starts_one_when_another_follows_within_the_size() -> R<()> {
    let mut d = driver(SlidingWindows::of(ms(10)).grace(ms(100)), Emit::OnUpdate)?;
    click(&mut d, "a", 100)?;
    assert_eq!(output(&mut d)?, vec![("a".into(), 90, 100, 1)]);
    click(&mut d, "a", 105)?;
    assert_eq!(
        output(&mut d)?,
        vec![("a".into(), 95, 105, 2), ("a".into(), 101, 111, 1)],
        "105's own window holds both; 100's right window starts after it"
    );
    click(&mut d, "a", 110)?;
    assert_eq!(
        output(&mut d)?,
        vec![
            ("a".into(), 100, 110, 3),
            ("a".into(), 101, 111, 2),
            ("a".into(), 106, 116, 1)
        ],
        "both ends inclusive: 100 is in [100, 110]"
    );
    click(&mut d, "a", 121)?;
    assert_eq!(
        output(&mut d)?,
        vec![("a".into(), 111, 121, 1)],
        "no record in (110, 121): 110's right window would equal 121's"
    );
    Ok(())
}

#[test]
fn final_results_come_once_the_window_end_plus_grace_has_passed() -> R<()> {
    let mut d = driver(SlidingWindows::of(ms(10)).grace(ms(5)), Emit::OnWindowClose)?;
    click(&mut d, "a", 100)?;
    click(&mut d, "a", 104)?;
    assert!(
        output(&mut d)?.is_empty(),
        "[90, 100] is open until time passes 105"
    );
    click(&mut d, "b", 106)?;
    assert_eq!(output(&mut d)?, vec![("a".into(), 90, 100, 1)]);
    click(&mut d, "b", 110)?;
    assert_eq!(output(&mut d)?, vec![("a".into(), 94, 104, 2)]);
    click(&mut d, "a", 99)?; // 99 < 110 - 5: late
    assert_eq!(d.late_records(OPERATOR), 1);
    d.end_input()?;
    assert_eq!(
        output(&mut d)?,
        vec![
            ("b".into(), 96, 106, 1),
            ("b".into(), 100, 110, 2),
            ("a".into(), 101, 111, 1),
            ("b".into(), 107, 117, 1)
        ],
        "the end of input closes the rest, in start order"
    );
    Ok(())
}

/// The final windows of each key by the definition: for every on-time record at `t` the
/// window `[t - size, t]`, and `[t + 1, t + 1 + size]` when a record falls in it; each
/// counts the on-time records within. Returns them and the number of late records.
fn recompute(records: &[(u8, i64)], size: i64, grace: i64) -> (BTreeMap<(u8, i64), i64>, u64) {
    let mut time = i64::MIN;
    let mut late = 0;
    let mut on_time: BTreeMap<u8, Vec<i64>> = BTreeMap::new();
    for &(key, at) in records {
        time = time.max(at);
        if at < time.saturating_sub(grace) {
            late += 1;
        } else {
            on_time.entry(key).or_default().push(at);
        }
    }
    let mut windows = BTreeMap::new();
    for (key, times) in on_time {
        let mut starts = std::collections::BTreeSet::new();
        for &t in &times {
            starts.insert(t - size);
            if times.iter().any(|&r| r > t && r <= t + size + 1) {
                starts.insert(t + 1);
            }
        }
        for start in starts {
            let n = times
                .iter()
                .filter(|&&r| (start..=start + size).contains(&r))
                .count();
            windows.insert((key, start), i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
    (windows, late)
}

fn fail(e: Box<dyn std::error::Error>) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn final_sliding_counts_equal_a_recomputation_from_the_input(
        records in proptest::collection::vec((0_u8..3, 0_i64..300), 1..60),
        size in 1_i64..40,
        grace in 0_i64..60,
    ) {
        let mut d = driver(
            SlidingWindows::of(ms(size.unsigned_abs())).grace(ms(grace.unsigned_abs())),
            Emit::OnWindowClose,
        ).map_err(fail)?;
        for &(key, at) in &records {
            click(&mut d, &key.to_string(), at).map_err(fail)?;
        }
        d.end_input().map_err(|e| fail(e.into()))?;
        let mut got = BTreeMap::new();
        for (user, start, end, count) in output(&mut d).map_err(fail)? {
            prop_assert_eq!(end - start, size);
            let key: u8 = user.parse().map_err(|e: std::num::ParseIntError| fail(e.into()))?;
            prop_assert!(got.insert((key, start), count).is_none(), "window emitted twice");
        }
        let (expected, late) = recompute(&records, size, grace);
        prop_assert_eq!(got, expected);
        prop_assert_eq!(d.late_records(OPERATOR), late);
    }
}

#[test]
fn idle_input_closes_sliding_windows_with_the_policy() -> R<()> {
    let builder = StreamsBuilder::new();
    builder
        .stream("clicks", StringSerde, UnitSerde)
        .group_by_key(StringSerde, UnitSerde)
        .windowed_by_sliding(SlidingWindows::of(ms(10_000)))
        .emit(Emit::OnWindowClose)
        .advance_when_idle(Duration::from_secs(10))
        .count("counts")
        .to_stream()
        .to("out", WindowedSerde::new(StringSerde), Nullable(I64Serde));
    let mut d = TopologyTestDriver::new(builder.build()?)?;
    click(&mut d, "a", 0)?;
    click(&mut d, "a", 5_000)?;
    assert_eq!(
        output(&mut d)?,
        [("a".to_owned(), -10_000, 0, 1)],
        "only the window ending at 0 has closed at time 5 000"
    );
    d.advance_wall_clock(Duration::from_secs(9))?;
    assert!(output(&mut d)?.is_empty(), "idle for less than 10 s");
    assert_eq!(d.idle_advances(OPERATOR), 0);
    d.advance_wall_clock(Duration::from_secs(2))?;
    assert_eq!(
        output(&mut d)?,
        [
            ("a".to_owned(), -5_000, 5_000, 2),
            ("a".to_owned(), 1, 10_001, 1)
        ]
    );
    assert!(d.idle_advances(OPERATOR) >= 1);
    Ok(())
}
