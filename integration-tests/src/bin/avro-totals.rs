//! A test app whose state is Avro, for upgrades of the state's schema: Avro orders (key: the
//! customer as text; value: record `Order` with `id` and `cents`, as `avro-orders` reads
//! them, through the schema registry at `AVRO_REGISTRY_URL`) are totalled per customer in
//! store `totals`. The totals are Avro records of the schema version `AVRO_TOTALS_VERSION`
//! names (1, 2 or 3; 1 when unset), under the value subject of the store's changelog. Each
//! order writes `<orders>:<cents>:<currency>` under its customer to the output topic, `-` for
//! a schema without a currency. Takes wordcount's flags.
//!
//! Version 2 adds `currency` with the default `EUR`, a compatible change: totals version 1
//! wrote read as `EUR`, and new customers start with `USD`. Version 3 adds `region` without a
//! default, which totals written by version 1 cannot be read as.

use std::time::Duration;

use clap::Parser;
use eddy::prelude::*;
use eddy_avro::apache_avro::types::Value;
use eddy_avro::{AvroSerde, GenericAvroSerde, Registry, Subject};
use eddy_integration_tests::TestAppArgs;

/// The orders' schema.
const ORDER: &str = r#"{"type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "id", "type": "string"}, {"name": "cents", "type": "long"}]}"#;

/// A customer's total, version 1.
const TOTAL_V1: &str = r#"{"type": "record", "name": "Total", "namespace": "shop",
    "fields": [{"name": "orders", "type": "long"}, {"name": "cents", "type": "long"}]}"#;

/// Version 2: a currency with a default.
const TOTAL_V2: &str = r#"{"type": "record", "name": "Total", "namespace": "shop",
    "fields": [{"name": "orders", "type": "long"}, {"name": "cents", "type": "long"},
               {"name": "currency", "type": "string", "default": "EUR"}]}"#;

/// Version 3: a region without a default.
const TOTAL_V3: &str = r#"{"type": "record", "name": "Total", "namespace": "shop",
    "fields": [{"name": "orders", "type": "long"}, {"name": "cents", "type": "long"},
               {"name": "currency", "type": "string", "default": "EUR"},
               {"name": "region", "type": "string"}]}"#;

/// An order as the app reads it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Order {
    id: String,
    cents: i64,
}

/// The totals' schema of `version`, and a new customer's total in it.
fn version(version: &str) -> anyhow::Result<(&'static str, Value)> {
    let mut fields = vec![
        ("orders".to_owned(), Value::Long(0)),
        ("cents".to_owned(), Value::Long(0)),
    ];
    let schema = match version {
        "1" => TOTAL_V1,
        "2" => TOTAL_V2,
        "3" => TOTAL_V3,
        other => anyhow::bail!("AVRO_TOTALS_VERSION is 1, 2 or 3, not `{other}`"),
    };
    if version != "1" {
        fields.push(("currency".to_owned(), Value::String("USD".to_owned())));
    }
    if version == "3" {
        fields.push(("region".to_owned(), Value::String(String::new())));
    }
    Ok((schema, Value::Record(fields)))
}

/// `total` with one more order of `cents`.
fn add(total: Value, cents: i64) -> Value {
    let Value::Record(fields) = total else {
        return total;
    };
    let fields = fields
        .into_iter()
        .map(|(name, value)| {
            let value = match (name.as_str(), value) {
                ("orders", Value::Long(n)) => Value::Long(n + 1),
                ("cents", Value::Long(c)) => Value::Long(c + cents),
                (_, value) => value,
            };
            (name, value)
        })
        .collect();
    Value::Record(fields)
}

/// `<orders>:<cents>:<currency>`.
fn show(total: &Value) -> String {
    let field = |wanted: &str| match total {
        Value::Record(fields) => fields.iter().find(|(n, _)| n == wanted).map(|(_, v)| v),
        _ => None,
    };
    let long = |name: &str| match field(name) {
        Some(Value::Long(n)) => n.to_string(),
        _ => "?".to_owned(),
    };
    let currency = match field("currency") {
        Some(Value::String(currency)) => currency.clone(),
        _ => "-".to_owned(),
    };
    format!("{}:{}:{currency}", long("orders"), long("cents"))
}

fn main() -> anyhow::Result<()> {
    let args = TestAppArgs::parse();
    let config = args.eddy.loader().load()?;
    let url = std::env::var("AVRO_REGISTRY_URL")
        .map_err(|_| anyhow::anyhow!("AVRO_REGISTRY_URL names the schema registry"))?;
    let (schema, initial) =
        version(&std::env::var("AVRO_TOTALS_VERSION").unwrap_or_else(|_| "1".to_owned()))?;
    let registry = Registry::builder(&url)
        .timeout(Duration::from_secs(2))
        .build()?;
    let orders = || AvroSerde::<Order>::new(&registry, ORDER, Subject::value_of(&args.input_topic));
    let changelog = format!("{}-totals-changelog", config.application.id);
    let totals = GenericAvroSerde::new(&registry, schema, Subject::value_of(&changelog))?;
    let builder = StreamsBuilder::new();
    builder
        .stream(&args.input_topic, StringSerde, orders()?)
        .group_by_key(StringSerde, orders()?)
        .aggregate(
            "totals",
            move || initial.clone(),
            |_: &String, order: Order, total: Value| add(total, order.cents),
            totals,
        )
        .to_stream()
        .map_values(|total: Option<Value>| total.map_or_else(|| "-".to_owned(), |t| show(&t)))
        .to(&args.output_topic, StringSerde, StringSerde);
    App::new(builder.build()?, config).run()?;
    Ok(())
}
