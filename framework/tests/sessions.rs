//! Session windows through the test driver: gap boundaries, merges with tombstones, grace,
//! late records, final-only emission, and a property test against a straightforward
//! recomputation of the sessions from the input.

use std::collections::BTreeMap;
use std::time::Duration;

use eddy::dsl::{LATE_OPERATOR_HEADER, LATE_OPERATOR_TIME_HEADER};
use eddy::prelude::*;
use proptest::prelude::*;

type R<T> = Result<T, Box<dyn std::error::Error>>;

const OPERATOR: &str = "sessions-session-aggregate";

/// One output record: `(user, start, end, count)`.
type Out = (String, i64, i64, Option<i64>);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn driver(windows: SessionWindows, emit: Emit) -> R<TopologyTestDriver> {
    let builder = StreamsBuilder::new();
    builder
        .stream("clicks", StringSerde, UnitSerde)
        .group_by_key(StringSerde, UnitSerde)
        .windowed_by_sessions(windows)
        .emit(emit)
        .late_records_to("late")
        .count("sessions")
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

fn output(d: &mut TopologyTestDriver) -> R<Vec<Out>> {
    Ok(
        d.read_output("out", &WindowedSerde::new(StringSerde), &Nullable(I64Serde))?
            .into_iter()
            .map(|r| (r.key.key, r.key.window.start, r.key.window.end, r.value))
            .collect(),
    )
}

fn out(user: &str, start: i64, end: i64, count: Option<i64>) -> Out {
    (user.to_owned(), start, end, count)
}

#[test]
fn records_exactly_a_gap_apart_share_a_session_and_one_more_millisecond_splits() -> R<()> {
    let mut d = driver(
        SessionWindows::with_gap(ms(10)).grace(ms(100)),
        Emit::OnUpdate,
    )?;
    click(&mut d, "a", 0)?;
    click(&mut d, "a", 10)?; // exactly the gap: same session
    click(&mut d, "a", 21)?; // 11 after the end: a new session
    assert_eq!(
        output(&mut d)?,
        vec![
            out("a", 0, 0, Some(1)),
            out("a", 0, 0, None),
            out("a", 0, 10, Some(2)),
            out("a", 21, 21, Some(1)),
        ]
    );
    Ok(())
}

#[test]
fn a_record_inside_a_session_updates_it_without_a_tombstone() -> R<()> {
    let mut d = driver(
        SessionWindows::with_gap(ms(10)).grace(ms(100)),
        Emit::OnUpdate,
    )?;
    click(&mut d, "a", 0)?;
    click(&mut d, "a", 8)?;
    click(&mut d, "a", 4)?;
    assert_eq!(
        output(&mut d)?,
        vec![
            out("a", 0, 0, Some(1)),
            out("a", 0, 0, None),
            out("a", 0, 8, Some(2)),
            out("a", 0, 8, Some(3)),
        ],
        "4 falls inside [0, 8]: an update, no tombstone"
    );
    Ok(())
}

#[test]
fn a_record_older_than_the_grace_is_late_and_routed_with_headers() -> R<()> {
    let mut d = driver(
        SessionWindows::with_gap(ms(10)).grace(ms(5)),
        Emit::OnUpdate,
    )?;
    click(&mut d, "a", 100)?;
    click(&mut d, "a", 95)?; // within grace: joins [100, 100]
    click(&mut d, "b", 94)?; // 94 < 100 − 5: late
    assert_eq!(
        output(&mut d)?,
        vec![
            out("a", 100, 100, Some(1)),
            out("a", 100, 100, None),
            out("a", 95, 100, Some(2)),
        ]
    );
    assert_eq!(d.late_records(OPERATOR), 1);
    let late = d.read_output("late", &StringSerde, &UnitSerde)?;
    assert_eq!(late.len(), 1);
    let header = |name: &str| {
        late[0]
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(header(LATE_OPERATOR_HEADER), Some(OPERATOR.to_owned()));
    assert_eq!(header(LATE_OPERATOR_TIME_HEADER), Some("100".to_owned()));
    Ok(())
}

#[test]
fn final_emission_sends_a_session_once_no_on_time_record_can_reach_it() -> R<()> {
    let mut d = driver(
        SessionWindows::with_gap(ms(10)).grace(ms(5)),
        Emit::OnWindowClose,
    )?;
    click(&mut d, "a", 0)?;
    click(&mut d, "a", 7)?;
    click(&mut d, "b", 22)?; // close 17: a record at 17 could still join [0, 7] (17 − 7 = 10)
    assert!(output(&mut d)?.is_empty());
    click(&mut d, "b", 23)?; // close 18: [0, 7] is final
    assert_eq!(output(&mut d)?, vec![out("a", 0, 7, Some(2))]);
    click(&mut d, "b", 60)?;
    assert_eq!(output(&mut d)?, vec![out("b", 22, 23, Some(2))]);
    Ok(())
}

#[test]
fn the_end_of_input_closes_every_open_session() -> R<()> {
    let mut d = driver(
        SessionWindows::with_gap(ms(10)).grace(ms(5)),
        Emit::OnWindowClose,
    )?;
    click(&mut d, "a", 0)?;
    click(&mut d, "a", 7)?;
    click(&mut d, "b", 12)?;
    assert!(output(&mut d)?.is_empty());
    d.end_input()?;
    assert_eq!(
        output(&mut d)?,
        vec![out("a", 0, 7, Some(2)), out("b", 12, 12, Some(1))]
    );
    Ok(())
}

/// The sessions a count must end with, computed without stores: for each on-time record,
/// the key's sessions within the gap merge with it.
fn recompute(
    records: &[(u8, i64)],
    gap: i64,
    grace: i64,
) -> (BTreeMap<(u8, i64, i64), i64>, u64, i64) {
    let mut sessions: BTreeMap<u8, Vec<(i64, i64, i64)>> = BTreeMap::new();
    let mut late = 0;
    let mut time = i64::MIN;
    for &(key, at) in records {
        time = time.max(at);
        if at < time - grace {
            late += 1;
            continue;
        }
        let list = sessions.entry(key).or_default();
        let (near, far): (Vec<_>, Vec<_>) = list
            .iter()
            .partition(|(s, e, _)| *e >= at - gap && *s <= at + gap);
        let merged = near.iter().fold((at, at, 1), |(s, e, n), (s2, e2, n2)| {
            (s.min(*s2), e.max(*e2), n + n2)
        });
        *list = far;
        list.push(merged);
    }
    let all = sessions
        .into_iter()
        .flat_map(|(k, list)| list.into_iter().map(move |(s, e, n)| ((k, s, e), n)))
        .collect();
    (all, late, time - grace)
}

fn fail(e: Box<dyn std::error::Error>) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn session_counts_equal_a_recomputation_from_the_input(
        records in proptest::collection::vec((0_u8..3, 0_i64..300), 1..60),
        gap in 1_i64..30,
        grace in 0_i64..40,
        final_only in any::<bool>(),
    ) {
        let windows = SessionWindows::with_gap(ms(gap as u64)).grace(ms(grace as u64));
        let emit = if final_only { Emit::OnWindowClose } else { Emit::OnUpdate };
        let mut d = driver(windows, emit).map_err(fail)?;
        for &(key, at) in &records {
            click(&mut d, &key.to_string(), at).map_err(fail)?;
        }
        let (expected, late, close) = recompute(&records, gap, grace);
        let mut table: BTreeMap<(u8, i64, i64), i64> = BTreeMap::new();
        let mut sent: BTreeMap<(u8, i64, i64), usize> = BTreeMap::new();
        for (user, start, end, count) in output(&mut d).map_err(fail)? {
            let key = (user.parse::<u8>().map_err(|e| TestCaseError::fail(e.to_string()))?, start, end);
            *sent.entry(key).or_default() += 1;
            match count {
                Some(n) => table.insert(key, n),
                None => table.remove(&key),
            };
        }
        if final_only {
            let closed: BTreeMap<_, _> = expected
                .into_iter()
                .filter(|((_, _, end), _)| *end < close - gap)
                .collect();
            prop_assert_eq!(&table, &closed);
            prop_assert!(sent.values().all(|&n| n == 1), "each session once: {:?}", sent);
        } else {
            prop_assert_eq!(&table, &expected);
        }
        prop_assert_eq!(d.late_records(OPERATOR), late);
    }
}

#[test]
fn idle_input_ends_sessions_with_the_policy() -> R<()> {
    let builder = StreamsBuilder::new();
    builder
        .stream("clicks", StringSerde, UnitSerde)
        .group_by_key(StringSerde, UnitSerde)
        .windowed_by_sessions(SessionWindows::with_gap(ms(30_000)))
        .emit(Emit::OnWindowClose)
        .advance_when_idle(Duration::from_secs(10))
        .count("sessions")
        .to_stream()
        .to("out", WindowedSerde::new(StringSerde), Nullable(I64Serde));
    let mut d = TopologyTestDriver::new(builder.build()?)?;
    click(&mut d, "a", 0)?;
    click(&mut d, "a", 5_000)?;
    d.advance_wall_clock(Duration::from_secs(30))?;
    assert!(
        output(&mut d)?.is_empty(),
        "30 s after 5 000 a record could still join"
    );
    d.advance_wall_clock(Duration::from_secs(1))?;
    assert_eq!(output(&mut d)?, vec![out("a", 0, 5_000, Some(2))]);
    assert!(d.idle_advances(OPERATOR) >= 1);
    Ok(())
}
