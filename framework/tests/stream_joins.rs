//! Windowed stream-stream joins through the test driver: window edges, left and outer
//! joins emitting unmatched records only after the window and grace have passed, late
//! records, and a property test against a recomputation from the input.

use std::collections::BTreeMap;
use std::time::Duration;

use eddy::prelude::*;
use proptest::prelude::*;

type R<T> = Result<T, Box<dyn std::error::Error>>;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Inner,
    Left,
    Outer,
}

/// `views` joined with `clicks` (values are ids), results `<view or ->/<click or ->`.
fn driver(kind: Kind, windows: JoinWindows) -> R<TopologyTestDriver> {
    let builder = StreamsBuilder::new();
    let views = builder.stream("views", StringSerde, StringSerde);
    let clicks = builder.stream("clicks", StringSerde, StringSerde);
    let joined = StreamJoined::new("vc", StringSerde, StringSerde, StringSerde);
    let show = |l: Option<&String>, r: Option<&String>| {
        format!(
            "{}/{}",
            l.map_or("-", String::as_str),
            r.map_or("-", String::as_str)
        )
    };
    let out = match kind {
        Kind::Inner => {
            views.join_stream(&clicks, windows, move |l, r| show(Some(l), Some(r)), joined)
        }
        Kind::Left => {
            views.left_join_stream(&clicks, windows, move |l, r| show(Some(l), r), joined)
        }
        Kind::Outer => views.outer_join_stream(&clicks, windows, show, joined),
    };
    out.to("out", StringSerde, StringSerde);
    Ok(TopologyTestDriver::new(builder.build()?)?)
}

fn send(d: &mut TopologyTestDriver, topic: &str, key: &str, id: &str, at: i64) -> R<()> {
    let s = StringSerde;
    d.pipe_input(topic, &s, &s, &key.to_owned(), &id.to_owned(), at)?;
    Ok(())
}

fn out(d: &mut TopologyTestDriver) -> R<Vec<String>> {
    Ok(d.read_output("out", &StringSerde, &StringSerde)?
        .into_iter()
        .map(|r| format!("{}:{}@{}", r.key, r.value, r.timestamp))
        .collect())
}

#[test]
fn records_join_within_the_window_inclusive_at_both_ends() -> R<()> {
    let windows = JoinWindows::of(ms(10)).grace(ms(100));
    let mut d = driver(Kind::Inner, windows)?;
    send(&mut d, "views", "a", "v1", 100)?;
    send(&mut d, "clicks", "a", "c-edge-before", 90)?;
    send(&mut d, "clicks", "a", "c-edge-after", 110)?;
    send(&mut d, "clicks", "a", "c-outside", 111)?;
    send(&mut d, "clicks", "b", "c-other-key", 100)?;
    assert_eq!(
        out(&mut d)?,
        vec!["a:v1/c-edge-before@100", "a:v1/c-edge-after@110"],
        "the result carries the later of the two timestamps"
    );
    Ok(())
}

#[test]
fn asymmetric_windows_bound_each_side() -> R<()> {
    let windows = JoinWindows::of(ms(0)).after(ms(5)).grace(ms(100));
    let mut d = driver(Kind::Inner, windows)?;
    send(&mut d, "views", "a", "v", 100)?;
    send(&mut d, "clicks", "a", "before", 99)?;
    send(&mut d, "clicks", "a", "after", 105)?;
    assert_eq!(out(&mut d)?, vec!["a:v/after@105"]);
    Ok(())
}

#[test]
fn a_left_join_emits_an_unmatched_record_only_after_its_window_and_grace() -> R<()> {
    let windows = JoinWindows::of(ms(10)).grace(ms(5));
    let mut d = driver(Kind::Left, windows)?;
    send(&mut d, "views", "a", "v-matched", 100)?;
    send(&mut d, "views", "b", "v-alone", 100)?;
    send(&mut d, "clicks", "a", "c", 104)?;
    assert_eq!(out(&mut d)?, vec!["a:v-matched/c@104"]);
    // A click for b at 110 could still come until the join's time passes 110 + 5.
    send(&mut d, "clicks", "z", "tick", 115)?;
    assert!(out(&mut d)?.is_empty(), "no early null result");
    send(&mut d, "clicks", "z", "tick", 116)?;
    assert_eq!(out(&mut d)?, vec!["b:v-alone/-@100"]);
    Ok(())
}

#[test]
fn an_outer_join_emits_unmatched_records_of_both_sides() -> R<()> {
    let windows = JoinWindows::of(ms(10));
    let mut d = driver(Kind::Outer, windows)?;
    send(&mut d, "views", "a", "v", 0)?;
    send(&mut d, "clicks", "b", "c", 0)?;
    send(&mut d, "views", "z", "tick", 11)?;
    assert_eq!(out(&mut d)?, vec!["a:v/-@0", "b:-/c@0"]);
    Ok(())
}

#[test]
fn records_older_than_the_grace_are_late_and_not_joined() -> R<()> {
    let windows = JoinWindows::of(ms(50)).grace(ms(5));
    let mut d = driver(Kind::Inner, windows)?;
    send(&mut d, "views", "a", "v", 100)?;
    send(&mut d, "clicks", "a", "late", 94)?;
    send(&mut d, "clicks", "a", "on-time", 95)?;
    assert_eq!(out(&mut d)?, vec!["a:v/on-time@100"]);
    assert_eq!(d.late_records("vc-join"), 1);
    Ok(())
}

/// What an outer join must have emitted, computed without stores: `(key, left, right)`
/// with `None` for a missing side.
fn recompute(
    records: &[(bool, u8, i64)],
    before: i64,
    after: i64,
    grace: i64,
) -> BTreeMap<(u8, Option<usize>, Option<usize>), usize> {
    let mut time = i64::MIN;
    let mut on_time: Vec<(usize, bool, u8, i64)> = Vec::new();
    for (i, &(left, key, at)) in records.iter().enumerate() {
        time = time.max(at);
        if at >= time - grace {
            on_time.push((i, left, key, at));
        }
    }
    let close = time - grace;
    let mut out = BTreeMap::new();
    for &(i, left, key, at) in &on_time {
        let partners: Vec<usize> = on_time
            .iter()
            .filter(|(j, l2, k2, t2)| {
                *l2 != left && *k2 == key && {
                    let (l, r) = if left { (at, *t2) } else { (*t2, at) };
                    r >= l - before && r <= l + after && *j != i
                }
            })
            .map(|(j, ..)| *j)
            .collect();
        if left {
            for &j in &partners {
                *out.entry((key, Some(i), Some(j))).or_default() += 1;
            }
        }
        let final_before = if left { close - after } else { close - before };
        if partners.is_empty() && at < final_before {
            let entry = if left {
                (key, Some(i), None)
            } else {
                (key, None, Some(i))
            };
            *out.entry(entry).or_default() += 1;
        }
    }
    out
}

fn fail(e: Box<dyn std::error::Error>) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn outer_join_results_equal_a_recomputation_from_the_input(
        records in proptest::collection::vec((any::<bool>(), 0_u8..3, 0_i64..200), 1..50),
        before in 0_i64..20,
        after in 0_i64..20,
        grace in 0_i64..30,
    ) {
        let windows = JoinWindows::of(ms(0))
            .before(ms(before as u64))
            .after(ms(after as u64))
            .grace(ms(grace as u64));
        let mut d = driver(Kind::Outer, windows).map_err(fail)?;
        for (i, &(left, key, at)) in records.iter().enumerate() {
            let topic = if left { "views" } else { "clicks" };
            send(&mut d, topic, &key.to_string(), &i.to_string(), at).map_err(fail)?;
        }
        let mut got: BTreeMap<(u8, Option<usize>, Option<usize>), usize> = BTreeMap::new();
        for r in d.read_output("out", &StringSerde, &StringSerde).map_err(|e| fail(e.into()))? {
            let (l, rr) = r.value.split_once('/').unwrap_or_default();
            let id = |s: &str| s.parse::<usize>().ok();
            *got.entry((r.key.parse().unwrap_or(255), id(l), id(rr))).or_default() += 1;
        }
        prop_assert_eq!(got, recompute(&records, before, after, grace));
    }
}

#[test]
fn the_end_of_input_emits_every_unmatched_record_once() -> R<()> {
    let windows = JoinWindows::of(ms(10)).grace(ms(5));
    let mut d = driver(Kind::Outer, windows)?;
    send(&mut d, "views", "a", "v-matched", 100)?;
    send(&mut d, "clicks", "a", "c", 104)?;
    send(&mut d, "views", "b", "v-alone", 100)?;
    send(&mut d, "clicks", "c", "c-alone", 103)?;
    assert_eq!(out(&mut d)?, vec!["a:v-matched/c@104"]);
    d.end_input()?;
    assert_eq!(out(&mut d)?, vec!["b:v-alone/-@100", "c:-/c-alone@103"]);
    d.end_input()?;
    assert!(out(&mut d)?.is_empty(), "a second end emits nothing again");
    Ok(())
}

/// A side re-keyed before the join (clicks arrive keyed by page, joined by user) goes
/// through a repartition topic first: each click meets the views of its user.
#[test]
fn a_rekeyed_stream_is_repartitioned_before_it_joins() -> R<()> {
    let builder = StreamsBuilder::new();
    let views = builder.stream("views", StringSerde, StringSerde);
    let clicks = builder
        .stream("clicks", StringSerde, StringSerde)
        .select_key(|_page: &String, user: &String| user.clone());
    views
        .join_stream(
            &clicks,
            JoinWindows::of(ms(100)),
            |view: &String, user: &String| format!("{view}/{user}"),
            StreamJoined::new("vc", StringSerde, StringSerde, StringSerde),
        )
        .to("out", StringSerde, StringSerde);
    let topology = builder.build()?;
    let internal: Vec<&String> = topology.repartition_topics().keys().collect();
    assert_eq!(internal, ["vc-right-repartition"]);
    let mut d = TopologyTestDriver::new(topology)?;
    send(&mut d, "views", "ann", "v1", 1_000)?;
    send(&mut d, "views", "bob", "v2", 1_000)?;
    // Keyed by page: only the value names the user.
    send(&mut d, "clicks", "/home", "bob", 1_050)?;
    send(&mut d, "clicks", "/cart", "ann", 1_200)?;
    assert_eq!(out(&mut d)?, ["bob:v2/bob@1050"]);
    Ok(())
}
