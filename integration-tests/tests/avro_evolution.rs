//! A state store's Avro schema evolving across a savepoint, against the real broker and a
//! real schema registry. `avro-totals` keeps per-customer totals as Avro records; a
//! savepoint taken while they are version 1 of their schema is refused by version 3 (a new
//! field without a default), naming the store, subject, version and field, and restored by
//! version 2, which reads the saved totals with its new field's default and goes on from
//! them.

use std::collections::BTreeMap;
use std::time::Duration;

use eddy::serde::Serde;
use eddy_avro::{AvroSerde, Registry, Subject};
use eddy_integration_tests::{create_savepoint, eventually, with_log_tails, AppProcess};
use eddy_integration_tests::{SnapshotTarget, WordcountRun, WordcountSpec};
use eddy_testkit::Isolation;

const ORDER: &str = r#"{"type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "id", "type": "string"}, {"name": "cents", "type": "long"}]}"#;
const WAIT: Duration = Duration::from_secs(300);

/// An order as the test writes it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Order {
    id: String,
    cents: i64,
}

/// Orders `range` (order `i` is `i + 1` cents) spread over `customers`: (customer, cents).
fn orders(range: std::ops::Range<i64>, customers: &[&str]) -> Vec<(String, i64)> {
    range
        .map(|i| {
            let customer = customers[usize::try_from(i).unwrap_or(0) % customers.len()];
            (customer.to_owned(), i + 1)
        })
        .collect()
}

/// Writes `orders` to the run's input, keyed by customer, in Avro through the registry at
/// `url`.
fn produce(run: &WordcountRun, url: &str, orders: &[(String, i64)]) -> anyhow::Result<()> {
    let serde: AvroSerde<Order> = AvroSerde::new(
        &Registry::builder(url).build()?,
        ORDER,
        Subject::value_of(&run.input),
    )?;
    let mut records = Vec::new();
    for (i, (customer, cents)) in orders.iter().enumerate() {
        let order = Order {
            id: format!("o{i}"),
            cents: *cents,
        };
        let bytes = serde
            .serialize(&order)?
            .ok_or_else(|| anyhow::anyhow!("null"))?;
        records.push((Some(customer.clone().into_bytes()), bytes));
    }
    run.kafka.produce(&run.input, records)?;
    Ok(())
}

/// Appends to `expected` the outputs `orders` make, per customer in order, from the totals
/// in `totals`; `currency` is what a customer already in `totals` shows, `new` a new one's.
fn expect(
    expected: &mut BTreeMap<String, Vec<String>>,
    totals: &mut BTreeMap<String, (i64, i64)>,
    orders: &[(String, i64)],
    currency: &str,
    new: &str,
) {
    let known: Vec<String> = totals.keys().cloned().collect();
    for (customer, cents) in orders {
        let total = totals.entry(customer.clone()).or_default();
        total.0 += 1;
        total.1 += cents;
        let shown = if known.contains(customer) {
            currency
        } else {
            new
        };
        expected
            .entry(customer.clone())
            .or_default()
            .push(format!("{}:{}:{shown}", total.0, total.1));
    }
}

/// The committed output per customer, in order.
fn outputs(run: &WordcountRun) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for record in run.kafka.read_all(&run.output, Isolation::ReadCommitted)? {
        out.entry(record.key_str())
            .or_default()
            .push(record.value_str());
    }
    Ok(out)
}

/// Waits until the committed output holds `records` records, failing early when `app` exits.
fn wait_for_output(run: &WordcountRun, app: &mut AppProcess, records: u64) -> anyhow::Result<()> {
    let mut tail = run.kafka.tail(&run.output)?;
    eventually(&format!("{records} outputs"), WAIT, || {
        if let Some(status) = app.exited()? {
            anyhow::bail!("{} exited with {status}", app.name());
        }
        Ok(tail.count(Duration::from_millis(200))? >= records)
    })
    .map_err(|e| with_log_tails(std::slice::from_ref(app), e))
}

/// Instance `name` of `avro-totals` with its totals in schema `version`.
fn spec(
    run: &WordcountRun,
    name: &str,
    url: &str,
    version: &str,
    env: &[(&str, &str)],
) -> WordcountSpec {
    let mut spec = run.spec(name, env);
    spec.binary = "avro-totals".to_owned();
    spec.env
        .push(("AVRO_REGISTRY_URL".to_owned(), url.to_owned()));
    spec.env
        .push(("AVRO_TOTALS_VERSION".to_owned(), version.to_owned()));
    spec
}

#[test]
fn avro_state_is_read_with_a_compatible_new_schema_after_a_savepoint_and_an_incompatible_one_is_refused(
) -> anyhow::Result<()> {
    let url = eddy_testkit::schema_registry_url()?;
    let run = WordcountRun::new("avro-evolution", 2)?;
    let target = SnapshotTarget::directory(&run);
    let mut expected = BTreeMap::new();
    let mut totals = BTreeMap::new();

    // Version 1 totals four customers' orders; a savepoint keeps them.
    let first = orders(0..40, &["ann", "bob", "cid", "dee"]);
    expect(&mut expected, &mut totals, &first, "-", "-");
    let mut v1 = AppProcess::start("v1", spec(&run, "v1", &url, "1", &[]))?;
    produce(&run, &url, &first)?;
    wait_for_output(&run, &mut v1, 40)?;
    let savepoint = create_savepoint(&run, &target)?;
    v1.terminate(Duration::from_secs(60))?;
    let written = run
        .kafka
        .end_offsets(&run.output, Isolation::ReadCommitted)?;

    // Version 3 cannot read them: refused before it processes anything.
    let from = [("EDDY__SNAPSHOT__FROM_SAVEPOINT", savepoint.as_str())];
    let mut v3 = AppProcess::start("v3", spec(&run, "v3", &url, "3", &from))?;
    let status = v3.wait_exit(Duration::from_secs(120))?;
    assert!(!status.success(), "version 3 must not start");
    let log = v3.log_text();
    let subject = format!("subject `{}-totals-changelog-value`", run.application_id);
    for says in ["store `totals`", subject.as_str(), "version 1", "region"] {
        assert!(
            log.contains(says),
            "`{says}` missing from the refusal:\n{}",
            v3.log_tail(20)
        );
    }
    assert_eq!(
        run.kafka
            .end_offsets(&run.output, Isolation::ReadCommitted)?,
        written,
        "the refused version wrote nothing"
    );

    // Version 2 reads them, with the new field's default, and goes on from them: a new
    // instance, with no local state, so the totals come from the savepoint.
    let second = orders(40..65, &["ann", "bob", "cid", "dee", "eve"]);
    expect(&mut expected, &mut totals, &second, "EUR", "USD");
    let mut v2 = AppProcess::start("v2", spec(&run, "v2", &url, "2", &from))?;
    produce(&run, &url, &second)?;
    wait_for_output(&run, &mut v2, 65)?;
    v2.terminate(Duration::from_secs(60))?;
    assert!(
        v2.log_text().contains(
            "store `totals`: its value format changed and the new serde reads the old data"
        ),
        "the accepted change is noted:\n{}",
        v2.log_tail(20)
    );
    assert_eq!(
        outputs(&run)?,
        expected,
        "every order once, version 2's totals going on from version 1's"
    );
    run.assert_no_open_transaction(std::slice::from_ref(&run.output))?;
    Ok(())
}
