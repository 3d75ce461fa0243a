//! Joins under kill -9 chaos and rescaling against the real broker. A stream-table join:
//! tasks read partition N of the click stream and of the users table together (the consumer
//! group protocol keeps them on one member), load the table before the clicks, and enrich
//! every click exactly once with its user's region. A windowed stream-stream outer join:
//! every pair within the window and every record without a partner comes out exactly once,
//! as a recomputation from the input says. A table-table outer join: every change of either
//! table yields its row exactly once, and each key ends with the row of both tables' last
//! values.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use eddy_integration_tests::{with_log_tails, AppProcess, WordcountRun};
use eddy_testkit::Isolation;

const PARTITIONS: i32 = 6;
const CLICKS: usize = 20_000;
const CHUNKS: usize = 8;
const USERS: usize = 40;

fn spec_for(run: &WordcountRun, name: &str) -> eddy_integration_tests::WordcountSpec {
    let mut spec = run.spec(
        name,
        &[
            ("EDDY__PROCESSING__GROUP_PROTOCOL", "consumer"),
            ("EDDY__PROCESSING__COMMIT_INTERVAL_MS", "50"),
        ],
    );
    spec.binary = "enrich-clicks".to_owned();
    spec
}

fn region(user: usize) -> String {
    ["eu", "us", "apac"][user % 3].to_owned()
}

#[test]
fn every_click_is_enriched_exactly_once_under_kill_9_and_rescaling() -> anyhow::Result<()> {
    let started = Instant::now();
    let run = WordcountRun::new("joins", PARTITIONS)?;
    let users_topic = format!("{}-users", run.input);
    run.kafka.create_topic(&users_topic, PARTITIONS)?;
    // Written in a transaction, as another exactly-once app would: a commit marker ends each
    // partition of the table, and loading it must step over that marker.
    run.kafka.produce_transactional(
        &users_topic,
        (0..USERS).map(|u| {
            (
                Some(format!("user-{u}").into_bytes()),
                region(u).into_bytes(),
            )
        }),
    )?;

    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let clicks: Vec<(usize, String)> = (0..CLICKS)
        .map(|i| (rng.random_range(0..USERS), format!("c{i}")))
        .collect();
    let mut apps = vec![
        AppProcess::start("a", spec_for(&run, "a"))?,
        AppProcess::start("b", spec_for(&run, "b"))?,
    ];
    let mut tail = run.kafka.tail(&run.output)?;
    let mut kills = 0;
    for (i, chunk) in clicks.chunks(CLICKS / CHUNKS).enumerate() {
        run.kafka.produce(
            &run.input,
            chunk.iter().map(|(u, id)| {
                (
                    Some(format!("user-{u}").into_bytes()),
                    id.clone().into_bytes(),
                )
            }),
        )?;
        tail.count(Duration::from_millis(rng.random_range(800..2_000)))?;
        if i == 2 {
            apps.push(AppProcess::start("c", spec_for(&run, "c"))?);
        }
        let victim = rng.random_range(0..apps.len());
        apps[victim].kill9()?;
        kills += 1;
        apps[victim].restart()?;
    }
    let waited = tail
        .wait_for(CLICKS as u64, Duration::from_secs(300))
        .map_err(|e| with_log_tails(&apps, e));
    for app in &mut apps {
        app.terminate(Duration::from_secs(60))?;
    }

    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut wrong = Vec::new();
    let mut unmatched = 0;
    for r in run.kafka.read_all(&run.output, Isolation::ReadCommitted)? {
        let user = r.key_str();
        let value = r.value_str();
        let Some((id, got)) = value.split_once('@') else {
            wrong.push(format!("{user}: {value}"));
            continue;
        };
        let u: usize = user.trim_start_matches("user-").parse()?;
        if got == "none" {
            unmatched += 1;
        } else if got != region(u) {
            wrong.push(format!("{user}: {value} (region {})", region(u)));
        }
        seen.entry(id.to_owned()).or_default().push(user);
    }
    let duplicates: Vec<_> = seen.iter().filter(|(_, v)| v.len() > 1).collect();
    assert!(wrong.is_empty(), "wrong joins: {wrong:?}");
    assert_eq!(
        unmatched, 0,
        "every user was in the table before the clicks: the table loads first"
    );
    assert!(
        duplicates.is_empty(),
        "clicks enriched twice: {duplicates:?}"
    );
    let missing: Vec<_> = clicks
        .iter()
        .filter(|(_, id)| !seen.contains_key(id))
        .take(10)
        .collect();
    assert!(missing.is_empty(), "clicks never enriched: {missing:?}");
    waited?;
    run.assert_no_open_transaction(&[
        run.output.clone(),
        format!("{}-users-changelog", run.application_id),
    ])?;
    println!(
        "joins: {CLICKS} clicks, {} instances, {kills} kill -9s, {:.1} s",
        apps.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[test]
fn a_join_under_the_classic_protocol_is_refused_naming_the_setting() -> anyhow::Result<()> {
    let run = WordcountRun::new("joins-classic", 2)?;
    run.kafka.create_topic(&format!("{}-users", run.input), 2)?;
    let mut spec = run.spec("a", &[("EDDY__PROCESSING__GROUP_PROTOCOL", "classic")]);
    spec.binary = "enrich-clicks".to_owned();
    let mut app = AppProcess::start("a", spec)?;
    let status = app.wait_exit(Duration::from_secs(60))?;
    assert!(!status.success());
    let log = app.log_text();
    assert!(
        log.contains("processing.group_protocol = consumer"),
        "the error names the setting: {log}"
    );
    Ok(())
}

#[test]
fn a_versioned_table_answers_state_queries_with_each_version_and_its_validity() -> anyhow::Result<()>
{
    let run = WordcountRun::new("joins-versioned", 2)?;
    let users = format!("{}-users", run.input);
    run.kafka.create_topic(&users, 2)?;
    let user = || Some(b"user-0".to_vec());
    run.kafka.produce_at(
        &users,
        [
            (user(), b"eu".to_vec(), 1_000),
            (user(), b"apac".to_vec(), 3_000),
            (user(), b"us".to_vec(), 2_000), // older than the newest: fills in history
        ],
    )?;
    let mut spec = spec_for(&run, "a");
    spec.env
        .push(("ENRICH_CLICKS_VERSIONED_MS".to_owned(), "60000".to_owned()));
    let mut app = AppProcess::start("a", spec)?;
    let ops = app.ops()?;
    let mut body = serde_json::Value::Null;
    eddy_integration_tests::eventually(
        "three versions of user-0",
        Duration::from_secs(120),
        || {
            let (status, answer) = ops.get_json("/state/users/user-0")?;
            let loaded = status == 200 && answer["versions"].as_array().map(Vec::len) == Some(3);
            body = answer;
            Ok(loaded)
        },
    )
    .map_err(|e| with_log_tails(std::slice::from_ref(&app), e))?;
    let versions: Vec<(i64, Option<i64>, String)> = body["versions"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|v| {
                    Some((
                        v["from"].as_i64()?,
                        v["to"].as_i64(),
                        v["value"].as_str()?.to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        versions,
        [
            (1_000, Some(2_000), "eu".to_owned()),
            (2_000, Some(3_000), "us".to_owned()),
            (3_000, None, "apac".to_owned())
        ],
        "{body}"
    );
    let (status, as_of) = ops.get_json("/state/users/user-0?from=2500&to=2500")?;
    assert_eq!(status, 200, "{as_of}");
    assert_eq!(
        as_of["versions"].as_array().map(Vec::len),
        Some(1),
        "{as_of}"
    );
    assert_eq!(as_of["versions"][0]["value"], "us", "{as_of}");
    let (status, _) = ops.get_json("/state/users/user-0?from=10&to=500")?;
    assert_eq!(status, 404, "nothing was valid before 1 000");
    app.terminate(Duration::from_secs(60))?;
    Ok(())
}

#[test]
fn every_table_change_yields_its_joined_row_exactly_once_under_kill_9() -> anyhow::Result<()> {
    const KEYS: usize = 40;
    const CHANGES: usize = 24_000;
    let started = Instant::now();
    let run = WordcountRun::new("table-joins", 4)?;
    let right_topic = format!("{}-right", run.input);
    run.kafka.create_topic(&right_topic, 4)?;
    let spec = |name: &str| {
        let mut spec = spec_for(&run, name);
        spec.binary = "join-tables".to_owned();
        // A second between commits: a kill always finds processed, uncommitted changes.
        spec.env.push((
            "EDDY__PROCESSING__COMMIT_INTERVAL_MS".to_owned(),
            "1000".to_owned(),
        ));
        spec
    };
    let mut apps = vec![
        AppProcess::start("a", spec("a"))?,
        AppProcess::start("b", spec("b"))?,
    ];
    // Changes alternate at random between the tables; every value is unique, so a row
    // written twice shows.
    let mut rng = rand::rngs::StdRng::seed_from_u64(17);
    let changes: Vec<(bool, usize, String)> = (0..CHANGES)
        .map(|i| {
            let left = rng.random_bool(0.5);
            let key = rng.random_range(0..KEYS);
            (left, key, format!("{}{i}", if left { 'L' } else { 'R' }))
        })
        .collect();
    let mut tail = run.kafka.tail(&run.output)?;
    let mut kills = 0;
    for chunk in changes.chunks(CHANGES / 8) {
        for (left, topic) in [(true, &run.input), (false, &right_topic)] {
            run.kafka.produce(
                topic,
                chunk
                    .iter()
                    .filter(|(l, _, _)| *l == left)
                    .map(|(_, key, value)| {
                        (
                            Some(format!("k{key}").into_bytes()),
                            value.clone().into_bytes(),
                        )
                    }),
            )?;
        }
        // What was processed but not committed when the kill came is processed again, and
        // must not come out twice.
        tail.count(Duration::from_millis(rng.random_range(150..600)))?;
        let victim = rng.random_range(0..apps.len());
        apps[victim].kill9()?;
        kills += 1;
        apps[victim].restart()?;
    }
    let waited = tail
        .wait_for(u64::try_from(CHANGES)?, Duration::from_secs(300))
        .map_err(|e| with_log_tails(&apps, e));
    for app in &mut apps {
        app.terminate(Duration::from_secs(60))?;
    }
    waited?;

    let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in run.kafka.read_all(&run.output, Isolation::ReadCommitted)? {
        rows.entry(r.key_str()).or_default().push(r.value_str());
    }
    let mut problems = Vec::new();
    for key in 0..KEYS {
        let key = format!("k{key}");
        let of_key: Vec<&(bool, usize, String)> = changes
            .iter()
            .filter(|(_, k, _)| format!("k{k}") == key)
            .collect();
        let last = |left: bool| {
            of_key
                .iter()
                .rev()
                .find(|(l, _, _)| *l == left)
                .map_or("-".to_owned(), |(_, _, v)| v.clone())
        };
        let got = rows.get(&key).cloned().unwrap_or_default();
        let mut seen = std::collections::BTreeSet::new();
        if let Some(twice) = got.iter().find(|row| !seen.insert(row.as_str())) {
            problems.push(format!("{key}: row {twice} written twice"));
        }
        if got.len() != of_key.len() {
            problems.push(format!(
                "{key}: {} rows for {} changes",
                got.len(),
                of_key.len()
            ));
        }
        let expected = format!("{}|{}", last(true), last(false));
        if got.last() != Some(&expected) {
            problems.push(format!(
                "{key}: ends with {:?}, expected {expected}",
                got.last()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    run.assert_no_open_transaction(&[
        run.output.clone(),
        format!("{}-joined-changelog", run.application_id),
    ])?;
    println!(
        "table joins: {CHANGES} changes of {KEYS} keys, 2 instances, {kills} kill -9s, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// One view or click: `(user, id, event time)`.
type Event = (usize, String, i64);

/// Views and clicks for the outer join test: 400 s of event time,
/// about two clicks per view within a second.
fn views_and_clicks(base: i64) -> (Vec<Event>, Vec<Event>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(23);
    let mut side = |prefix: &str| -> Vec<Event> {
        (0..6_000)
            .map(|i| {
                let at = base + i as i64 * 66 + rng.random_range(0..2_000);
                (rng.random_range(0..24), format!("{prefix}{i}"), at)
            })
            .collect()
    };
    let views = side("v");
    let clicks = side("c");
    (views, clicks)
}

#[test]
fn every_pair_and_every_unmatched_record_of_an_outer_join_comes_out_once() -> anyhow::Result<()> {
    let started = Instant::now();
    let run = WordcountRun::new("stream-join", PARTITIONS)?;
    let clicks_topic = format!("{}-clicks", run.input);
    run.kafka.create_topic(&clicks_topic, PARTITIONS)?;
    let base = eddy::record::wall_clock_ms() - 3 * 3_600_000;
    let (views, clicks) = views_and_clicks(base);
    // After the data, one view per user an hour and more later closes every window: records
    // without a partner come out then.
    let flush = base + 400_000 + 3_600_000 + 10_000;
    let flushes: Vec<Event> = (0..24).map(|u| (u, format!("flush{u}"), flush)).collect();

    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for (vu, v, vt) in &views {
        let partners: Vec<&String> = clicks
            .iter()
            .filter(|(cu, _, ct)| cu == vu && (ct - vt).abs() <= 1_000)
            .map(|(_, c, _)| c)
            .collect();
        for c in &partners {
            *expected.entry(format!("user-{vu}:{v}/{c}")).or_default() += 1;
        }
        if partners.is_empty() {
            *expected.entry(format!("user-{vu}:{v}/-")).or_default() += 1;
        }
    }
    for (cu, c, ct) in &clicks {
        if !views
            .iter()
            .any(|(vu, _, vt)| vu == cu && (ct - vt).abs() <= 1_000)
        {
            *expected.entry(format!("user-{cu}:-/{c}")).or_default() += 1;
        }
    }
    let total: usize = expected.values().sum();

    let spec = |name: &str| {
        let mut spec = spec_for(&run, name);
        spec.binary = "join-streams".to_owned();
        spec
    };
    let mut apps = vec![
        AppProcess::start("a", spec("a"))?,
        AppProcess::start("b", spec("b"))?,
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(29);
    let mut tail = run.kafka.tail(&run.output)?;
    let encode = |(u, id, at): &Event| {
        (
            Some(format!("user-{u}").into_bytes()),
            format!("{id}@{at}").into_bytes(),
        )
    };
    let mut kills = 0;
    for (i, (vs, cs)) in views.chunks(750).zip(clicks.chunks(750)).enumerate() {
        run.kafka.produce(&run.input, vs.iter().map(encode))?;
        run.kafka.produce(&clicks_topic, cs.iter().map(encode))?;
        tail.count(Duration::from_millis(rng.random_range(800..2_000)))?;
        if i == 2 {
            apps.push(AppProcess::start("c", spec("c"))?);
        }
        let victim = rng.random_range(0..apps.len());
        apps[victim].kill9()?;
        kills += 1;
        apps[victim].restart()?;
    }
    // The flush must not overtake data still on its way: a task waits only
    // `processing.max_task_idle_ms` for an input that lags, then takes the flush (an hour
    // ahead) and every later record of the other input would be late. So it goes in once
    // the app has committed both inputs to their ends.
    eddy_integration_tests::eventually(
        "the app committed both inputs to their ends",
        Duration::from_secs(300),
        || {
            for topic in [&run.input, &clicks_topic] {
                let committed = run.kafka.committed_offsets(&run.application_id, topic)?;
                let ends = run.kafka.end_offsets(topic, Isolation::ReadCommitted)?;
                if committed != ends.iter().map(|&e| Some(e)).collect::<Vec<_>>() {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )?;
    run.kafka.produce(&run.input, flushes.iter().map(encode))?;
    let waited = tail
        .wait_for(total as u64, Duration::from_secs(300))
        .map_err(|e| with_log_tails(&apps, e));
    for app in &mut apps {
        app.terminate(Duration::from_secs(60))?;
    }
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    for r in run.kafka.read_all(&run.output, Isolation::ReadCommitted)? {
        *got.entry(format!("{}:{}", r.key_str(), r.value_str()))
            .or_default() += 1;
    }
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(k, n)| got.get(*k) != Some(*n))
        .map(|(k, n)| format!("{k}: expected {n}, got {:?}", got.get(k)))
        .chain(
            got.iter()
                .filter(|(k, _)| !expected.contains_key(*k))
                .map(|(k, n)| format!("{k}: not expected, got {n}")),
        )
        .take(20)
        .collect();
    assert!(
        wrong.is_empty(),
        "outer join results differ:\n{}",
        wrong.join("\n")
    );
    waited?;
    run.assert_no_open_transaction(std::slice::from_ref(&run.output))?;
    println!(
        "stream join: {} views, {} clicks, {total} results, {} instances, {kills} kill -9s, {:.1} s",
        views.len(),
        clicks.len(),
        apps.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
