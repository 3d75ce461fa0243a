//! The `orders-postgres` binary: runs the orders-to-PostgreSQL topology as one instance of its
//! app.

use clap::Parser;
use eddy::config::ConfigArgs;
use eddy::App;
use eddy_avro::{AvroSerde, Registry, Subject};
use orders_postgres::Order;

/// Avro orders totalled per customer and upserted into PostgreSQL exactly once. Every setting
/// is a flag below, a key of the `--config` file or an `EDDY__SECTION__KEY` environment
/// variable; flags win. PostgreSQL needs `max_prepared_transactions` of at least the number
/// of the orders topic's partitions.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The orders topic (key: order id; value: Avro `shop.Order`).
    #[arg(long, default_value = "orders")]
    orders_topic: String,
    /// The schema registry's Confluent-compatible URL.
    #[arg(long, default_value = "http://127.0.0.1:8081/apis/ccompat/v7")]
    registry_url: String,
    /// The PostgreSQL database.
    #[arg(long, default_value = "postgres://eddy@127.0.0.1:5433/postgres")]
    postgres_url: String,
    /// The table of totals (created when missing).
    #[arg(long, default_value = "customer_totals")]
    table: String,
    #[command(flatten)]
    eddy: ConfigArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = args.eddy.loader().load()?;
    let registry = Registry::builder(&args.registry_url).build()?;
    let orders: AvroSerde<Order> = AvroSerde::new(
        &registry,
        orders_postgres::ORDER_SCHEMA,
        Subject::value_of(&args.orders_topic),
    )?;
    let mut db = postgres_client(&args.postgres_url)?;
    db.batch_execute(&orders_postgres::create_totals_table(&args.table))?;
    let sink = orders_postgres::totals_sink(&args.postgres_url, &args.table)?;
    let topology = orders_postgres::topology(&args.orders_topic, orders, &sink)?;
    App::new(topology, config).run()?;
    Ok(())
}

fn postgres_client(url: &str) -> anyhow::Result<postgres::Client> {
    Ok(postgres::Client::connect(url, postgres::NoTls)?)
}
