//! A stream-table join under kill -9 chaos and rescaling against the real broker: tasks read
//! partition N of the click stream and of the users table together (the consumer group
//! protocol keeps them on one member), load the table before the clicks, and enrich every
//! click exactly once with its user's region.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use eddy_integration_tests::{AppProcess, WordcountRun};
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
        .map_err(|e| {
            let logs: Vec<String> = apps
                .iter()
                .map(|a| format!("--- {}:\n{}", a.name(), a.log_tail(20)))
                .collect();
            anyhow::anyhow!("{e}\n{}", logs.join("\n"))
        });
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
    for topic in [
        run.output.clone(),
        format!("{}-users-changelog", run.application_id),
    ] {
        assert_eq!(
            run.kafka.end_offsets(&topic, Isolation::ReadCommitted)?,
            run.kafka.end_offsets(&topic, Isolation::ReadUncommitted)?,
            "no transaction left open on {topic}"
        );
    }
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
    let mut spec = run.spec("a", &[]);
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
