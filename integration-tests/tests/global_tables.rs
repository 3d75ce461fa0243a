//! A stream-global-table join against the real broker: the users table has one partition and
//! the clicks four (no co-partitioning), no click meets a missing user, updates reach running
//! instances, and every click comes out exactly once under kill -9.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use eddy_integration_tests::{
    eventually_every, on_timeout, with_log_tails, AppProcess, WordcountRun,
};
use eddy_testkit::Isolation;

const USERS: usize = 1_000;
const CLICKS: usize = 4_000;

fn region(user: usize) -> String {
    ["eu", "us", "apac"][user % 3].to_owned()
}

fn spec_for(run: &WordcountRun, name: &str) -> eddy_integration_tests::WordcountSpec {
    let mut spec = run.spec(name, &[("EDDY__PROCESSING__COMMIT_INTERVAL_MS", "50")]);
    spec.binary = "enrich-global".to_owned();
    spec
}

fn clicks_for(range: std::ops::Range<usize>, users: &[usize]) -> Vec<(Option<Vec<u8>>, Vec<u8>)> {
    range
        .map(|i| {
            (
                Some(format!("c{i}").into_bytes()),
                format!("user-{}", users[i]).into_bytes(),
            )
        })
        .collect()
}

#[test]
fn every_click_meets_the_loaded_global_table_exactly_once_and_updates_flow_in() -> anyhow::Result<()>
{
    let started = Instant::now();
    let run = WordcountRun::new("global", 4)?;
    let users_topic = format!("{}-users", run.input);
    run.kafka.create_topic(&users_topic, 1)?;
    // Written in a transaction: the reader steps over the commit marker that ends it.
    run.kafka.produce_transactional(
        &users_topic,
        (0..USERS).map(|u| {
            (
                Some(format!("user-{u}").into_bytes()),
                region(u).into_bytes(),
            )
        }),
    )?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let users: Vec<usize> = (0..CLICKS).map(|_| rng.random_range(0..USERS)).collect();
    let half = CLICKS / 2;

    let mut apps = vec![
        AppProcess::start("a", spec_for(&run, "a"))?,
        AppProcess::start("b", spec_for(&run, "b"))?,
    ];
    run.kafka.produce(&run.input, clicks_for(0..half, &users))?;
    let mut tail = run.kafka.tail(&run.output)?;
    tail.wait_for(1, Duration::from_secs(120))
        .map_err(|e| with_log_tails(&apps, e))?;
    apps[0].kill9()?;
    apps[0].restart()?;

    // An update reaches running instances: probe clicks of user-0 until one shows it.
    run.kafka.produce(
        &users_topic,
        [(Some(b"user-0".to_vec()), b"moved".to_vec())],
    )?;
    let mut probes = 0;
    let probe_interval = Duration::from_millis(500);
    let probed = eventually_every(
        "a probe seeing the update",
        Duration::from_secs(120),
        probe_interval,
        || {
            run.kafka.produce(
                &run.input,
                [(
                    Some(format!("probe-{probes}").into_bytes()),
                    b"user-0".to_vec(),
                )],
            )?;
            probes += 1;
            Ok(run
                .kafka
                .read_all(&run.output, Isolation::ReadCommitted)?
                .iter()
                .any(|r| r.key_str().starts_with("probe-") && r.value_str() == "user-0@moved"))
        },
    );
    let moved = on_timeout(probed.map(|()| true), || Ok(false))?;
    assert!(
        moved,
        "no instance applied the table update within 2 minutes"
    );
    run.kafka
        .produce(&run.input, clicks_for(half..CLICKS, &users))?;
    let total = u64::try_from(CLICKS + probes)?;
    let waited = tail
        .wait_for(total, Duration::from_secs(300))
        .map_err(|e| with_log_tails(&apps, e));
    for app in &mut apps {
        app.terminate(Duration::from_secs(60))?;
    }
    waited?;

    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for r in run.kafka.read_all(&run.output, Isolation::ReadCommitted)? {
        if seen.insert(r.key_str(), r.value_str()).is_some() {
            duplicates.push(r.key_str());
        }
    }
    assert!(
        duplicates.is_empty(),
        "clicks enriched twice: {duplicates:?}"
    );
    let mut wrong = Vec::new();
    for (i, &u) in users.iter().enumerate() {
        let got = seen.get(&format!("c{i}"));
        let loaded = format!("user-{u}@{}", region(u));
        // Every instance loaded the table before its first click (never "none"); user-0's
        // clicks may meet either value, depending on when the instance read the update.
        let fine = got == Some(&loaded) || (u == 0 && got.is_some_and(|g| g == "user-0@moved"));
        if !fine {
            wrong.push(format!("c{i} (user-{u}): {got:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong clicks:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    run.assert_no_open_transaction(std::slice::from_ref(&run.output))?;
    println!(
        "global table: {CLICKS} clicks + {probes} probes over a 1-partition table of {USERS} users, 2 instances, 1 kill -9, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
