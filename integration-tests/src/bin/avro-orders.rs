//! A test app that reads Avro orders (key: the order id as text; value: record `Order` with
//! `id` and `cents`) from the input topic, through the schema registry at
//! `AVRO_REGISTRY_URL`, and writes `<id>:<cents>` for each to the output topic. Takes
//! wordcount's flags.

use std::time::Duration;

use clap::Parser;
use eddy::prelude::*;
use eddy_avro::{AvroSerde, Registry, Subject};
use eddy_integration_tests::TestAppArgs;

/// The orders' schema.
pub const ORDER: &str = r#"{"type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "id", "type": "string"}, {"name": "cents", "type": "long"}]}"#;

/// An order as the app reads it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Order {
    id: String,
    cents: i64,
}

fn main() -> anyhow::Result<()> {
    let args = TestAppArgs::parse();
    let config = args.eddy.loader().load()?;
    let url = std::env::var("AVRO_REGISTRY_URL")
        .map_err(|_| anyhow::anyhow!("AVRO_REGISTRY_URL names the schema registry"))?;
    let registry = Registry::builder(&url)
        .timeout(Duration::from_secs(2))
        .build()?;
    let orders: AvroSerde<Order> =
        AvroSerde::new(&registry, ORDER, Subject::value_of(&args.input_topic))?;
    let builder = StreamsBuilder::new();
    builder
        .stream(&args.input_topic, StringSerde, orders)
        .map_values(|order: Order| format!("{}:{}", order.id, order.cents))
        .to(&args.output_topic, StringSerde, StringSerde);
    App::new(builder.build()?, config).run()?;
    Ok(())
}
