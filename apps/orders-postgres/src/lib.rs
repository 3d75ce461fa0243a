//! Orders to PostgreSQL: Avro orders (through a schema registry) are totalled per customer in
//! a state store, and each customer's running total is upserted into a PostgreSQL table,
//! exactly once, through the two-phase sink.
//!
//! ```text
//! orders (order id → Order {id, customer, cents}, Avro)
//!   └─ by customer ─► totals store (orders, cents) ─► customer_totals (PostgreSQL, upsert)
//! ```

use eddy::prelude::*;
use eddy_postgres::{Change, PostgresError, PostgresSink, PostgresStreamExt, Table};

/// The orders' Avro schema (registered under the orders topic's value subject).
pub const ORDER_SCHEMA: &str = r#"{"type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "id", "type": "string"}, {"name": "customer", "type": "string"},
               {"name": "cents", "type": "long"}]}"#;

/// The name of the store of totals per customer.
pub const TOTALS_STORE: &str = "customer-totals";

/// An order as the app reads it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Order {
    /// The order's id.
    pub id: String,
    /// Who placed it.
    pub customer: String,
    /// Its amount in cents.
    pub cents: i64,
}

/// A customer's running total.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Total {
    /// Orders counted.
    pub orders: i64,
    /// Their amounts in cents.
    pub cents: i64,
}

/// The table of totals: `customer text PRIMARY KEY, orders bigint, cents bigint`.
pub fn totals_table(name: &str) -> Result<Table, PostgresError> {
    Table::upsert(name, &["customer", "orders", "cents"], &["customer"])
}

/// The SQL that creates the totals table `name`.
pub fn create_totals_table(name: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {name} (customer text PRIMARY KEY, orders bigint NOT NULL, cents bigint NOT NULL)"
    )
}

/// The sink upserting each customer's total into table `table` at `url`.
///
/// # Errors
/// The URL or the table is unusable.
pub fn totals_sink(url: &str, table: &str) -> Result<PostgresSink<String, Total>, PostgresError> {
    PostgresSink::new(
        "customer-totals",
        url,
        totals_table(table)?,
        |customer: &String, total: &Total| {
            Some(Change::Row(vec![
                customer.as_str().into(),
                total.orders.into(),
                total.cents.into(),
            ]))
        },
    )
}

/// The topology: orders read from `orders_topic` with `order_serde` (Avro in the app, any
/// serde in tests), totals per customer, written through `sink`.
///
/// # Errors
/// Fails only if the topology is invalid (it is not).
pub fn topology<S>(
    orders_topic: &str,
    order_serde: S,
    sink: &PostgresSink<String, Total>,
) -> Result<Topology, TopologyError>
where
    S: Serde<Order>,
{
    let order_serde: std::sync::Arc<dyn Serde<Order>> = std::sync::Arc::new(order_serde);
    let builder = StreamsBuilder::new();
    builder
        .stream(
            orders_topic,
            StringSerde,
            std::sync::Arc::clone(&order_serde),
        )
        .select_key(|_: &String, order: &Order| order.customer.clone())
        .group_by_key(StringSerde, order_serde)
        .aggregate(
            TOTALS_STORE,
            Total::default,
            |_: &String, order: Order, total: Total| Total {
                orders: total.orders + 1,
                cents: total.cents + order.cents,
            },
            JsonSerde::<Total>::new(),
        )
        .to_stream()
        .flat_map_values(|total: Option<Total>| total)
        .to_postgres(sink);
    builder.build()
}
