//! The page-views topology through the test driver: the example of the app's README.

use eddy::prelude::*;
use pageviews::{PageView, Profile, Topics};

type R<T> = Result<T, Box<dyn std::error::Error>>;

const MINUTE: i64 = 60_000;

fn topics() -> Topics {
    Topics {
        views: "pageviews".into(),
        profiles: "profiles".into(),
        sessions: "user-sessions".into(),
        regions: "region-views".into(),
    }
}

/// `(key, start, end, count)` of a windowed output, times in minutes from 0.
fn read(d: &mut TopologyTestDriver, topic: &str) -> R<Vec<(String, f64, f64, i64)>> {
    let minutes = |ms: i64| ms as f64 / MINUTE as f64;
    Ok(
        d.read_output(topic, &WindowedSerde::new(StringSerde), &Nullable(I64Serde))?
            .into_iter()
            .filter_map(|r| {
                Some((
                    r.key.key,
                    minutes(r.key.window.start),
                    minutes(r.key.window.end),
                    r.value?,
                ))
            })
            .collect(),
    )
}

#[test]
fn views_are_sessionized_per_user_and_counted_per_region_and_minute() -> R<()> {
    let mut d = TopologyTestDriver::new(pageviews::topology(&topics())?)?;
    let profile = JsonSerde::<Profile>::new();
    let view = JsonSerde::<PageView>::new();
    for (user, region) in [("ann", "eu"), ("bob", "us")] {
        let p = Profile {
            region: region.into(),
        };
        d.pipe_input("profiles", &StringSerde, &profile, &user.to_owned(), &p, 0)?;
    }
    let views = [
        ("ann", "/home", 0),
        ("bob", "/home", 10_000),
        ("ann", "/shoes", 30_000),
        ("cid", "/home", 45_000),
        ("ann", "/cart", 70_000),
        ("bob", "/help", 40 * MINUTE),
        ("ann", "/home", 50 * MINUTE),
        ("bob", "/home", 90 * MINUTE),
    ];
    for (user, page, at) in views {
        let v = PageView {
            page: page.into(),
            at,
        };
        d.pipe_input("pageviews", &StringSerde, &view, &user.to_owned(), &v, at)?;
    }
    assert_eq!(
        read(&mut d, "region-views")?,
        vec![
            ("eu".into(), 0.0, 1.0, 2),
            ("unknown".into(), 0.0, 1.0, 1),
            ("us".into(), 0.0, 1.0, 1),
            ("eu".into(), 1.0, 2.0, 1),
            ("us".into(), 40.0, 41.0, 1),
            ("eu".into(), 50.0, 51.0, 1),
        ],
        "one final count per region and minute, once the minute (and its grace) is over"
    );
    let at = |ms: i64| ms as f64 / MINUTE as f64;
    assert_eq!(
        read(&mut d, "user-sessions")?,
        vec![
            ("bob".into(), at(10_000), at(10_000), 1),
            ("cid".into(), at(45_000), at(45_000), 1),
            ("ann".into(), 0.0, at(70_000), 3),
            ("bob".into(), 40.0, 40.0, 1),
            ("ann".into(), 50.0, 50.0, 1),
        ],
        "a session is final 30 minutes (plus grace) after its last view, in order of ends"
    );
    Ok(())
}
