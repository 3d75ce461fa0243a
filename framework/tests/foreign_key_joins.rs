//! Foreign-key table-table joins through the test driver: rows follow their foreign key,
//! right changes reach every row that names them, deletions and missing foreign keys
//! propagate, and a property test compares the result table with a recomputation after
//! every change.

use std::collections::BTreeMap;

use eddy::prelude::*;
use proptest::prelude::*;

type R<T> = Result<T, Box<dyn std::error::Error>>;

/// Orders (order id → "customer" or "" for none) joined with customers (id → region).
fn driver(left: bool) -> R<TopologyTestDriver> {
    let builder = StreamsBuilder::new();
    let orders = builder.table("orders", StringSerde, StringSerde, "orders");
    let customers = builder.table("customers", StringSerde, StringSerde, "customers");
    let customer = |order: &String| Some(order.clone()).filter(|c| !c.is_empty());
    let joined = if left {
        orders.left_join_foreign_key(
            &customers,
            "order-regions",
            customer,
            StringSerde,
            |c: &String, region: Option<&String>| {
                format!("{c}@{}", region.map_or("-", String::as_str))
            },
        )
    } else {
        orders.join_foreign_key(
            &customers,
            "order-regions",
            customer,
            StringSerde,
            |c: &String, region: &String| format!("{c}@{region}"),
        )
    };
    joined
        .to_stream()
        .to("out", StringSerde, Nullable(StringSerde));
    Ok(TopologyTestDriver::new(builder.build()?)?)
}

fn pipe(d: &mut TopologyTestDriver, topic: &str, key: &str, value: Option<&str>) -> R<()> {
    d.pipe_raw(topic, Some(key.as_bytes()), value.map(str::as_bytes), 0)?;
    Ok(())
}

fn out(d: &mut TopologyTestDriver) -> R<Vec<(String, Option<String>)>> {
    Ok(d.read_output("out", &StringSerde, &Nullable(StringSerde))?
        .into_iter()
        .map(|r| (r.key, r.value))
        .collect())
}

fn row(key: &str, value: Option<&str>) -> (String, Option<String>) {
    (key.to_owned(), value.map(str::to_owned))
}

#[test]
fn a_row_follows_its_foreign_key_and_every_change_of_the_row_it_names() -> R<()> {
    let mut d = driver(false)?;
    pipe(&mut d, "orders", "o1", Some("ann"))?;
    assert!(out(&mut d)?.is_empty(), "ann is not a customer yet");
    pipe(&mut d, "customers", "ann", Some("eu"))?;
    pipe(&mut d, "orders", "o2", Some("ann"))?;
    assert_eq!(
        out(&mut d)?,
        [row("o1", Some("ann@eu")), row("o2", Some("ann@eu"))]
    );
    pipe(&mut d, "customers", "ann", Some("us"))?;
    assert_eq!(
        out(&mut d)?,
        [row("o1", Some("ann@us")), row("o2", Some("ann@us"))],
        "a right change reaches every row naming it"
    );
    pipe(&mut d, "customers", "bob", Some("apac"))?;
    pipe(&mut d, "orders", "o1", Some("bob"))?;
    assert_eq!(out(&mut d)?, [row("o1", Some("bob@apac"))]);
    pipe(&mut d, "customers", "ann", Some("eu"))?;
    assert_eq!(
        out(&mut d)?,
        [row("o2", Some("ann@eu"))],
        "o1 left ann: her change no longer reaches it"
    );
    pipe(&mut d, "customers", "bob", None)?;
    assert_eq!(
        out(&mut d)?,
        [row("o1", None)],
        "inner: bob's deletion deletes o1"
    );
    pipe(&mut d, "orders", "o2", None)?;
    assert_eq!(out(&mut d)?, [row("o2", None)]);
    pipe(&mut d, "orders", "o3", None)?;
    pipe(&mut d, "orders", "o1", Some(""))?;
    assert!(
        out(&mut d)?.is_empty(),
        "deleting an unknown key or a row without a foreign key changes no row"
    );
    Ok(())
}

#[test]
fn a_left_join_keeps_rows_without_a_foreign_key_or_a_right_row() -> R<()> {
    let mut d = driver(true)?;
    pipe(&mut d, "orders", "o1", Some("ann"))?;
    pipe(&mut d, "orders", "o2", Some(""))?;
    assert_eq!(
        out(&mut d)?,
        [row("o1", Some("ann@-")), row("o2", Some("@-"))]
    );
    pipe(&mut d, "customers", "ann", Some("eu"))?;
    pipe(&mut d, "customers", "ann", None)?;
    assert_eq!(
        out(&mut d)?,
        [row("o1", Some("ann@eu")), row("o1", Some("ann@-"))]
    );
    pipe(&mut d, "orders", "o1", None)?;
    assert_eq!(out(&mut d)?, [row("o1", None)]);
    assert_eq!(
        d.store_get::<String, String>("order-regions", &"o2".to_owned())?,
        Some("@-".to_owned()),
        "the result table is queryable"
    );
    Ok(())
}

#[test]
fn joining_a_table_with_itself_by_foreign_key_is_refused_at_build_time() {
    let builder = StreamsBuilder::new();
    let parents = builder.table("parents", StringSerde, StringSerde, "parents");
    parents
        .join_foreign_key(
            &parents,
            "grandparents",
            |p: &String| Some(p.clone()),
            StringSerde,
            |_: &String, g: &String| g.clone(),
        )
        .to_stream()
        .to("out", StringSerde, Nullable(StringSerde));
    let err = builder
        .build()
        .expect_err("a sub-topology would read its own output");
    assert!(err.to_string().contains("reads its own output"), "{err}");
}

/// One change of either table: `(true, order, customer index (4: none) or deletion)` or
/// `(false, customer, region index or deletion)`.
fn change() -> impl Strategy<Value = (bool, u8, Option<u8>)> {
    (any::<bool>(), 0u8..6, proptest::option::of(0u8..5))
}

proptest! {
    #[test]
    fn the_result_table_always_equals_the_join_of_both_tables(
        left in any::<bool>(),
        changes in proptest::collection::vec(change(), 1..60),
    ) {
        let mut d = driver(left).unwrap();
        let mut orders: BTreeMap<String, String> = BTreeMap::new();
        let mut customers: BTreeMap<String, String> = BTreeMap::new();
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for (is_order, id, target) in changes {
            if is_order {
                let order = format!("o{id}");
                // An order names customer c0..c3 or none (""), or is deleted.
                match target {
                    Some(c) => {
                        let customer = if c < 4 { format!("c{c}") } else { String::new() };
                        pipe(&mut d, "orders", &order, Some(&customer)).unwrap();
                        orders.insert(order, customer);
                    }
                    None => {
                        pipe(&mut d, "orders", &order, None).unwrap();
                        orders.remove(&order);
                    }
                }
            } else {
                let customer = format!("c{}", id % 4);
                match target {
                    Some(r) => {
                        let region = format!("r{r}");
                        pipe(&mut d, "customers", &customer, Some(&region)).unwrap();
                        customers.insert(customer, region);
                    }
                    None => {
                        pipe(&mut d, "customers", &customer, None).unwrap();
                        customers.remove(&customer);
                    }
                }
            }
            for (key, value) in out(&mut d).unwrap() {
                match value {
                    Some(v) => seen.insert(key, v),
                    None => seen.remove(&key),
                };
            }
            let expected: BTreeMap<String, String> = orders
                .iter()
                .filter_map(|(order, customer)| {
                    let region = Some(customer).filter(|c| !c.is_empty()).and_then(|c| customers.get(c));
                    match (left, region) {
                        (_, Some(r)) => Some((order.clone(), format!("{customer}@{r}"))),
                        (true, None) => Some((order.clone(), format!("{customer}@-"))),
                        (false, None) => None,
                    }
                })
                .collect();
            prop_assert_eq!(&seen, &expected);
        }
    }
}
