//! The orders topology through the test driver, with the app's real serdes and sink: Avro
//! orders through the schema registry, totals upserted into a real PostgreSQL (both started
//! by the testkit when `make test` has not started them).

use eddy::prelude::*;
use eddy_avro::{AvroSerde, Registry, Subject};
use orders_postgres::{Order, ORDER_SCHEMA};

type R<T> = Result<T, Box<dyn std::error::Error>>;

#[test]
fn orders_are_totalled_per_customer_and_upserted_once_per_commit() -> R<()> {
    let topic = eddy_testkit::unique_name("orders");
    let table = eddy_testkit::unique_name("totals").replace('-', "_");
    let url = eddy_testkit::postgres_url()?;
    let mut db = postgres::Client::connect(&url, postgres::NoTls)?;
    db.batch_execute(&orders_postgres::create_totals_table(&table))?;
    let registry = Registry::builder(&eddy_testkit::schema_registry_url()?).build()?;
    let serde = || AvroSerde::<Order>::new(&registry, ORDER_SCHEMA, Subject::value_of(&topic));
    let sink = orders_postgres::totals_sink(&url, &table)?;
    let mut driver = TopologyTestDriver::new(orders_postgres::topology(&topic, serde()?, &sink)?)?;

    let orders = [("o1", "ann", 500), ("o2", "bob", 120), ("o3", "ann", 250)];
    let writer = serde()?;
    for (id, customer, cents) in orders {
        let order = Order {
            id: id.to_owned(),
            customer: customer.to_owned(),
            cents,
        };
        driver.pipe_input(&topic, &StringSerde, &writer, &id.to_owned(), &order, 0)?;
    }
    let rows: Vec<(String, i64, i64)> = db
        .query(
            &format!("SELECT customer, orders, cents FROM {table} ORDER BY customer"),
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        rows,
        vec![("ann".to_owned(), 2, 750), ("bob".to_owned(), 1, 120)],
        "one row per customer with its running total"
    );
    Ok(())
}
