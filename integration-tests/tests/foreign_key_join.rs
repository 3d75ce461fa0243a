//! A foreign-key table-table join under kill -9 against the real broker: orders (4
//! partitions) name customers (3 partitions, so the tables are not co-partitioned), and
//! every order's row in the output follows its customer's region. Exactly once: no row is
//! written twice for an order, every row pairs a value the order had with a region its
//! customer had, and each order ends with the row of its last value and its customer's
//! last region.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use eddy_integration_tests::{eventually, with_log_tails, AppProcess, WordcountRun};
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

#[test]
fn every_order_follows_its_customer_exactly_once_under_kill_9() -> anyhow::Result<()> {
    let started = Instant::now();
    let run = WordcountRun::new("fk-join", 4)?;
    let customers_topic = format!("{}-customers", run.input);
    run.kafka.create_topic(&customers_topic, 3)?;
    let spec = |name: &str| {
        let mut spec = run.spec(
            name,
            &[
                ("EDDY__PROCESSING__GROUP_PROTOCOL", "consumer"),
                // A second between commits: a kill always finds processed, uncommitted
                // changes on every sub-topology.
                ("EDDY__PROCESSING__COMMIT_INTERVAL_MS", "1000"),
            ],
        );
        spec.binary = "join-foreign-key".to_owned();
        spec
    };
    let mut apps = vec![
        AppProcess::start("a", spec("a"))?,
        AppProcess::start("b", spec("b"))?,
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(29);
    let changes: Vec<Change> = (0..CHANGES)
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
        .collect();
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
        run.kafka.produce(
            &run.input,
            chunk.iter().filter_map(|c| match c {
                Change::Order(o, v) => {
                    Some((Some(format!("o{o}").into_bytes()), v.clone().into_bytes()))
                }
                Change::Customer(..) => None,
            }),
        )?;
        run.kafka.produce(
            &customers_topic,
            chunk.iter().filter_map(|c| match c {
                Change::Customer(c, r) => {
                    Some((Some(format!("c{c}").into_bytes()), r.clone().into_bytes()))
                }
                Change::Order(..) => None,
            }),
        )?;
        // What was processed but not committed when the kill came is processed again, and
        // must not come out twice.
        tail.count(Duration::from_millis(rng.random_range(100..900)))?;
        let victim = rng.random_range(0..apps.len());
        apps[victim].kill9()?;
        kills += 1;
        apps[victim].restart()?;
    }
    let expected = expected_last(&changes);
    let mut last_rows = Rows::new();
    let settled = eventually("every order's last row", Duration::from_secs(300), || {
        // Reads everything at most once a second, while output still flows or not.
        tail.count(Duration::from_secs(1))?;
        last_rows = rows(&run)?;
        Ok(expected
            .iter()
            .all(|(order, row)| last_rows.get(order).and_then(|r| r.last()) == Some(row)))
    })
    .map_err(|e| with_log_tails(&apps, e));
    for app in &mut apps {
        app.terminate(Duration::from_secs(60))?;
    }
    settled?;
    let all = rows(&run)?;
    let problems = violations(&changes, &all);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    run.assert_no_open_transaction(&[
        run.output.clone(),
        format!("{}-order-regions-changelog", run.application_id),
        format!(
            "{}-order-regions-fk-subscriptions-changelog",
            run.application_id
        ),
    ])?;
    println!(
        "foreign-key join: {CHANGES} changes of {ORDERS} orders and {CUSTOMERS} customers, {} rows, 2 instances, {kills} kill -9s, {:.1} s",
        all.values().map(Vec::len).sum::<usize>(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
