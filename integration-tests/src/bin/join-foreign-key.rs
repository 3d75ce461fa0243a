//! A test app that left-joins orders with customers by foreign key: the input topic holds
//! orders (order id → `<customer id>#<change id>`), `<input topic>-customers` holds customers
//! (customer id → region), and each order's row `<order value>|<region or ->` goes to the
//! output topic (a tombstone once the order is deleted). Takes wordcount's flags.

use clap::Parser;
use eddy::prelude::*;
use eddy_integration_tests::TestAppArgs;

fn main() -> anyhow::Result<()> {
    let args = TestAppArgs::parse();
    let config = args.eddy.loader().load()?;
    let builder = StreamsBuilder::new();
    let orders = builder.table(&args.input_topic, StringSerde, StringSerde, "orders");
    let customers = builder.table(
        &format!("{}-customers", args.input_topic),
        StringSerde,
        StringSerde,
        "customers",
    );
    orders
        .left_join_foreign_key(
            &customers,
            "order-regions",
            |order: &String| {
                order
                    .split_once('#')
                    .map(|(customer, _)| customer.to_owned())
            },
            StringSerde,
            |order: &String, region: Option<&String>| {
                format!("{order}|{}", region.map_or("-", String::as_str))
            },
        )
        .to_stream()
        .to(&args.output_topic, StringSerde, Nullable(StringSerde));
    App::new(builder.build()?, config).run()?;
    Ok(())
}
