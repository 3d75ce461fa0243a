//! A test app that left-joins orders with customers by foreign key: the input topic holds
//! orders (order id → `<customer id>#<change id>`), `<input topic>-customers` holds customers
//! (customer id → region), and each order's row `<order value>|<region or ->` goes to the
//! output topic (a tombstone once the order is deleted). Takes wordcount's flags.

use clap::Parser;
use eddy::config::ConfigArgs;
use eddy::prelude::*;

/// Flags, as wordcount takes them.
#[derive(Debug, Parser)]
struct Args {
    #[arg(long)]
    input_topic: String,
    #[arg(long)]
    output_topic: String,
    #[command(flatten)]
    eddy: ConfigArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
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
