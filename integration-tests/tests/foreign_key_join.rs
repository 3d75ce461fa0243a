//! A foreign-key table-table join under kill -9 against the real broker: orders (4
//! partitions) name customers (3 partitions, so the tables are not co-partitioned), and
//! every order's row in the output follows its customer's region. Exactly once: no row is
//! written twice for an order, every row pairs a value the order had with a region its
//! customer had, and each order ends with the row of its last value and its customer's
//! last region.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use eddy_integration_tests::{eventually, with_log_tails, AppProcess, WordcountRun, WordcountSpec};
use eddy_testkit::Isolation;

const ORDERS: usize = 60;
const CUSTOMERS: usize = 12;
const CHANGES: usize = 12_000;
const CHUNKS: usize = 8;

/// One change: an order's new value (`c<customer>#L<i>`, or `L<i>` naming no customer) or
/// a customer's new region (`R<i>`).
#[derive(Debug, Clone)]
enum Change {
    Order(usize, String),
    Customer(usize, String),
}

/// Each order's rows as the output holds them (tombstones left out).
type Rows = BTreeMap<String, Vec<String>>;

fn rows(run: &WordcountRun) -> anyhow::Result<Rows> {
    let mut rows = Rows::new();
    for r in run.kafka.read_all(&run.output, Isolation::ReadCommitted)? {
        if r.value.is_some() {
            rows.entry(r.key_str()).or_default().push(r.value_str());
        }
    }
    Ok(rows)
}

/// Every order's expected last row, from the last values of both tables.
fn expected_last(changes: &[Change]) -> BTreeMap<String, String> {
    let (mut orders, mut customers) = (BTreeMap::new(), BTreeMap::new());
    for change in changes {
        match change {
            Change::Order(o, v) => orders.insert(format!("o{o}"), v.clone()),
            Change::Customer(c, r) => customers.insert(format!("c{c}"), r.clone()),
        };
    }
    orders
        .into_iter()
        .map(|(order, value)| {
            let region = value
                .split_once('#')
                .and_then(|(customer, _)| customers.get(customer))
                .map_or("-", String::as_str);
            let row = format!("{value}|{region}");
            (order, row)
        })
        .collect()
}

/// What exactly-once forbids: a row written twice for an order, or a row pairing values
/// the tables never paired.
fn violations(changes: &[Change], rows: &Rows) -> Vec<String> {
    let mut order_values: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    let mut regions: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    for change in changes {
        match change {
            Change::Order(o, v) => order_values.entry(format!("o{o}")).or_default().insert(v),
            Change::Customer(c, r) => regions.entry(format!("c{c}")).or_default().insert(r),
        };
    }
    let mut problems = Vec::new();
    for (order, got) in rows {
        let mut seen = BTreeSet::new();
        for row in got {
            if !seen.insert(row) {
                problems.push(format!("{order}: row {row} written twice"));
            }
            let Some((value, region)) = row.split_once('|') else {
                problems.push(format!("{order}: malformed row {row}"));
                continue;
            };
            let had = order_values.get(order).is_some_and(|v| v.contains(value));
            let customer = value.split_once('#').map(|(c, _)| c);
            let paired = match (customer, region) {
                (_, "-") => true,
                (Some(c), r) => regions.get(c).is_some_and(|rs| rs.contains(r)),
                (None, _) => false,
            };
            if !had || !paired {
                problems.push(format!("{order}: row {row} pairs values never paired"));
            }
        }
    }
    problems
}

/// A run's topics: orders in 4 partitions (the run's input), customers in 3.
fn new_run(prefix: &str) -> anyhow::Result<(WordcountRun, String)> {
    let run = WordcountRun::new(prefix, 4)?;
    let customers_topic = format!("{}-customers", run.input);
    run.kafka.create_topic(&customers_topic, 3)?;
    Ok((run, customers_topic))
}

fn spec(run: &WordcountRun, name: &str, env: &[(&str, &str)]) -> WordcountSpec {
    let mut env = env.to_vec();
    env.push(("EDDY__PROCESSING__GROUP_PROTOCOL", "consumer"));
    let mut spec = run.spec(name, &env);
    spec.binary = "join-foreign-key".to_owned();
    spec
}

/// `CHANGES` changes drawn with `seed`: 60 % orders (a tenth naming no customer).
fn changes(seed: u64) -> Vec<Change> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..CHANGES)
        .map(|i| {
            if rng.random_bool(0.6) {
                let order = rng.random_range(0..ORDERS);
                let value = if rng.random_bool(0.1) {
                    format!("L{i}")
                } else {
                    format!("c{}#L{i}", rng.random_range(0..CUSTOMERS))
                };
                Change::Order(order, value)
            } else {
                Change::Customer(rng.random_range(0..CUSTOMERS), format!("R{i}"))
            }
        })
        .collect()
}

/// Produces `changes` to the orders and customers topics.
fn produce(run: &WordcountRun, customers_topic: &str, changes: &[Change]) -> anyhow::Result<()> {
    let keyed = |key: String, value: &str| (Some(key.into_bytes()), value.as_bytes().to_vec());
    run.kafka.produce(
        &run.input,
        changes.iter().filter_map(|c| match c {
            Change::Order(o, v) => Some(keyed(format!("o{o}"), v)),
            Change::Customer(..) => None,
        }),
    )?;
    run.kafka.produce(
        customers_topic,
        changes.iter().filter_map(|c| match c {
            Change::Customer(c, r) => Some(keyed(format!("c{c}"), r)),
            Change::Order(..) => None,
        }),
    )?;
    Ok(())
}

/// True when every order's last row is the expected one.
fn settled(rows: &Rows, expected: &BTreeMap<String, String>) -> bool {
    expected
        .iter()
        .all(|(order, row)| rows.get(order).and_then(|r| r.last()) == Some(row))
}

/// Checks that every order ends with its expected row, that no row breaks exactly-once and
/// that no transaction is left open; returns the number of rows.
fn check(run: &WordcountRun, changes: &[Change]) -> anyhow::Result<usize> {
    let all = rows(run)?;
    let mut problems = violations(changes, &all);
    for (order, row) in expected_last(changes) {
        let last = all.get(&order).and_then(|r| r.last());
        if last != Some(&row) {
            problems.push(format!("{order}: ends with {last:?}, expected {row}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    run.assert_no_open_transaction(&[
        run.output.clone(),
        format!("{}-order-regions-changelog", run.application_id),
        format!(
            "{}-order-regions-fk-subscriptions-changelog",
            run.application_id
        ),
    ])?;
    Ok(all.values().map(Vec::len).sum())
}

#[test]
fn every_order_follows_its_customer_exactly_once_under_kill_9() -> anyhow::Result<()> {
    let started = Instant::now();
    let (run, customers_topic) = new_run("fk-join")?;
    // A second between commits: a kill always finds processed, uncommitted changes on
    // every sub-topology.
    let env = [("EDDY__PROCESSING__COMMIT_INTERVAL_MS", "1000")];
    let mut apps = vec![
        AppProcess::start("a", spec(&run, "a", &env))?,
        AppProcess::start("b", spec(&run, "b", &env))?,
    ];
    let changes = changes(29);
    let mut rng = rand::rngs::StdRng::seed_from_u64(31);
    let mut tail = run.kafka.tail(&run.output)?;
    let mut kills = 0;
    for chunk in changes.chunks(CHANGES / CHUNKS) {
        // Both instances run their tasks when the chunk arrives, so the kill below finds
        // processed, uncommitted work.
        for app in &apps {
            app.ops()?
                .wait_status("/ready", 200, Duration::from_secs(120))
                .map_err(|e| with_log_tails(&apps, e))?;
        }
        produce(&run, &customers_topic, chunk)?;
        // What was processed but not committed when the kill came is processed again, and
        // must not come out twice.
        tail.count(Duration::from_millis(rng.random_range(100..900)))?;
        let victim = rng.random_range(0..apps.len());
        apps[victim].kill9()?;
        kills += 1;
        apps[victim].restart()?;
    }
    let expected = expected_last(&changes);
    let done = eventually("every order's last row", Duration::from_secs(300), || {
        // Reads everything at most once a second, while output still flows or not.
        tail.count(Duration::from_secs(1))?;
        Ok(settled(&rows(&run)?, &expected))
    })
    .map_err(|e| with_log_tails(&apps, e));
    for app in &mut apps {
        app.terminate(Duration::from_secs(60))?;
    }
    done?;
    let rows = check(&run, &changes)?;
    println!(
        "foreign-key join: {CHANGES} changes of {ORDERS} orders and {CUSTOMERS} customers, {rows} rows, 2 instances, {kills} kill -9s, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[test]
fn a_bounded_run_of_the_join_settles_all_three_sub_topologies_and_exits() -> anyhow::Result<()> {
    let started = Instant::now();
    let (run, customers_topic) = new_run("fk-join-bounded")?;
    let changes = changes(37);
    produce(&run, &customers_topic, &changes)?;
    let env = [("EDDY__PROCESSING__MODE", "bounded")];
    let mut apps = vec![
        AppProcess::start("a", spec(&run, "a", &env))?,
        AppProcess::start("b", spec(&run, "b", &env))?,
    ];
    for app in &mut apps {
        let status = app.wait_exit(Duration::from_secs(180))?;
        assert!(
            status.success(),
            "{}: {status}\n{}",
            app.name(),
            app.log_tail(30)
        );
    }
    let rows = check(&run, &changes)?;
    println!(
        "foreign-key join, bounded: {CHANGES} changes, {rows} rows, 2 instances, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
