//! Avro serdes against a real schema registry (Apicurio Registry serving the Confluent API,
//! started by the testkit when `make test` has not): the wire format, schema evolution in
//! both directions of time, refused incompatible schemas, unknown schema ids, the subject
//! strategies, and Avro keys, values and state through a topology.

use apache_avro::types::Value;
use eddy::prelude::*;
use eddy_avro::{AvroSerde, Compatibility, GenericAvroSerde, Registry, Subject};
use serde::{Deserialize, Serialize};

type R<T> = Result<T, Box<dyn std::error::Error>>;

const ORDER_V1: &str = r#"{"type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "id", "type": "string"}, {"name": "cents", "type": "long"}]}"#;
/// V1 plus a field with a default: backward compatible.
const ORDER_V2: &str = r#"{"type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "id", "type": "string"}, {"name": "cents", "type": "long"},
               {"name": "currency", "type": "string", "default": "EUR"}]}"#;
/// V2 plus a field without a default: a new reader cannot read old records.
const ORDER_V3: &str = r#"{"type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "id", "type": "string"}, {"name": "cents", "type": "long"},
               {"name": "currency", "type": "string", "default": "EUR"},
               {"name": "customer", "type": "string"}]}"#;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OrderV1 {
    id: String,
    cents: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OrderV2 {
    id: String,
    cents: i64,
    currency: String,
}

fn registry() -> R<Registry> {
    Ok(Registry::builder(&eddy_testkit::schema_registry_url()?).build()?)
}

/// A topic name no other test run uses (subjects are named after it).
fn topic(prefix: &str) -> String {
    eddy_testkit::unique_name(prefix)
}

fn order(id: &str, cents: i64) -> OrderV1 {
    OrderV1 {
        id: id.to_owned(),
        cents,
    }
}

#[test]
fn records_carry_the_magic_byte_and_their_schema_id_and_read_back() -> R<()> {
    let registry = registry()?;
    let topic = topic("orders");
    let serde: AvroSerde<OrderV1> = AvroSerde::new(&registry, ORDER_V1, Subject::value_of(&topic))?;
    let bytes = serde.serialize(&order("o1", 250))?.ok_or("null bytes")?;
    assert_eq!(bytes[0], 0, "magic byte");
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    assert!(id > 0, "a registry id");
    // id "o1" (zig-zag length 2, bytes), cents 250 (zig-zag varint 500).
    assert_eq!(&bytes[5..], &[4, b'o', b'1', 0xf4, 0x03]);
    assert_eq!(serde.deserialize(Some(&bytes))?, order("o1", 250));
    // A second serde (another instance, say) finds the schema by its id.
    let other: AvroSerde<OrderV1> = AvroSerde::new(&registry, ORDER_V1, Subject::value_of(&topic))?;
    assert_eq!(other.deserialize(Some(&bytes))?, order("o1", 250));
    Ok(())
}

#[test]
fn a_new_version_reads_old_records_and_an_old_version_reads_new_ones() -> R<()> {
    let registry = registry()?;
    let topic = topic("evolving");
    let subject = Subject::value_of(&topic);
    registry.set_compatibility(&format!("{topic}-value"), Compatibility::Full)?;
    let v1: AvroSerde<OrderV1> = AvroSerde::new(&registry, ORDER_V1, subject.clone())?;
    let v2: AvroSerde<OrderV2> = AvroSerde::new(&registry, ORDER_V2, subject)?;
    let old = v1.serialize(&order("o1", 100))?;
    assert_eq!(
        v2.deserialize(old.as_deref())?,
        OrderV2 {
            id: "o1".to_owned(),
            cents: 100,
            currency: "EUR".to_owned()
        },
        "the new field takes its default"
    );
    let new = v2.serialize(&OrderV2 {
        id: "o2".to_owned(),
        cents: 7,
        currency: "USD".to_owned(),
    })?;
    assert_ne!(
        old.as_deref().map(|b| &b[1..5]),
        new.as_deref().map(|b| &b[1..5]),
        "two schema ids"
    );
    assert_eq!(
        v1.deserialize(new.as_deref())?,
        order("o2", 7),
        "the old reader ignores the new field"
    );
    Ok(())
}

#[test]
fn an_incompatible_schema_is_refused_by_the_registry_and_old_records_do_not_fit_it() -> R<()> {
    let registry = registry()?;
    let topic = topic("guarded");
    let subject = Subject::value_of(&topic);
    registry.set_compatibility(&format!("{topic}-value"), Compatibility::Backward)?;
    let v2 = GenericAvroSerde::new(&registry, ORDER_V2, subject.clone())?;
    let record = |fields: &[(&str, Value)]| {
        Value::Record(
            fields
                .iter()
                .map(|(n, v)| ((*n).to_owned(), v.clone()))
                .collect(),
        )
    };
    let written = v2.serialize(&record(&[
        ("id", Value::String("o1".to_owned())),
        ("cents", Value::Long(1)),
        ("currency", Value::String("EUR".to_owned())),
    ]))?;
    let v3 = GenericAvroSerde::new(&registry, ORDER_V3, subject)?;
    let refused = v3
        .serialize(&record(&[
            ("id", Value::String("o2".to_owned())),
            ("cents", Value::Long(2)),
            ("currency", Value::String("EUR".to_owned())),
            ("customer", Value::String("ann".to_owned())),
        ]))
        .expect_err("the registry refuses a field without a default under BACKWARD");
    assert!(!refused.is_transient(), "{refused}");
    assert!(
        refused.message().contains(&format!("{topic}-value")),
        "{refused}"
    );
    let unreadable = v3
        .deserialize(written.as_deref())
        .expect_err("v2 records lack the customer field v3 needs");
    assert!(
        unreadable.message().contains("does not resolve"),
        "{unreadable}"
    );
    assert!(!unreadable.is_transient());
    Ok(())
}

#[test]
fn an_unknown_schema_id_is_the_records_fault_not_a_transient_failure() -> R<()> {
    let registry = registry()?;
    let serde = GenericAvroSerde::new(&registry, ORDER_V1, Subject::value_of(&topic("unknown")))?;
    let err = serde
        .deserialize(Some(&[0, 0x7f, 0xff, 0xff, 0xfe, 2, b'x', 2]))
        .expect_err("no schema has that id");
    assert!(!err.is_transient(), "{err}");
    assert!(err.message().contains("schema id 2147483646"), "{err}");
    Ok(())
}

#[test]
fn record_and_topic_record_strategies_register_under_their_subjects() -> R<()> {
    let registry = registry()?;
    let topic = topic("strategies");
    let by_record: AvroSerde<OrderV1> = AvroSerde::new(&registry, ORDER_V1, Subject::Record)?;
    assert_eq!(by_record.subject(), "shop.Order");
    let by_topic_record: AvroSerde<OrderV1> = AvroSerde::new(
        &registry,
        ORDER_V1,
        Subject::TopicRecord {
            topic: topic.clone(),
        },
    )?;
    assert_eq!(by_topic_record.subject(), format!("{topic}-shop.Order"));
    let bytes = by_topic_record.serialize(&order("o1", 1))?;
    assert_eq!(by_record.deserialize(bytes.as_deref())?, order("o1", 1));
    // Looking up instead of registering finds what was registered.
    let lookup: AvroSerde<OrderV1> =
        AvroSerde::without_registering(&registry, ORDER_V1, Subject::TopicRecord { topic })?;
    assert_eq!(lookup.serialize(&order("o1", 1))?, bytes);
    let missing: AvroSerde<OrderV1> = AvroSerde::without_registering(
        &registry,
        ORDER_V1,
        Subject::value_of(&self::topic("never-registered")),
    )?;
    let err = missing
        .serialize(&order("o1", 1))
        .expect_err("nothing registered");
    assert!(!err.is_transient(), "{err}");
    Ok(())
}

#[test]
fn avro_keys_values_and_state_flow_through_a_topology() -> R<()> {
    let registry = registry()?;
    let (input, output) = (topic("orders-in"), topic("totals-out"));
    let keys = || AvroSerde::<String>::new(&registry, r#""string""#, Subject::key_of(&input));
    let values = || AvroSerde::<OrderV1>::new(&registry, ORDER_V1, Subject::value_of(&input));
    let totals = || {
        AvroSerde::<OrderV1>::new(
            &registry,
            ORDER_V1,
            Subject::value_of(&format!("{input}-totals-changelog")),
        )
    };
    let builder = StreamsBuilder::new();
    builder
        .stream(&input, keys()?, values()?)
        .group_by_key(keys()?, values()?)
        .aggregate(
            "totals",
            || order("", 0),
            |_: &String, next: OrderV1, total: OrderV1| OrderV1 {
                id: next.id,
                cents: total.cents + next.cents,
            },
            totals()?,
        )
        .to_stream()
        .to(&output, keys()?, Nullable(values()?));
    let mut driver = TopologyTestDriver::new(builder.build()?)?;
    for (customer, cents) in [("ann", 100), ("bob", 5), ("ann", 20)] {
        driver.pipe_input(
            &input,
            &keys()?,
            &values()?,
            &customer.to_owned(),
            &order("o", cents),
            1,
        )?;
    }
    let out = driver.read_output(&output, &keys()?, &Nullable(values()?))?;
    let got: Vec<(String, i64)> = out
        .into_iter()
        .map(|r| (r.key, r.value.map_or(-1, |o| o.cents)))
        .collect();
    assert_eq!(
        got,
        [
            ("ann".to_owned(), 100),
            ("bob".to_owned(), 5),
            ("ann".to_owned(), 120)
        ]
    );
    assert_eq!(
        driver.store_get::<String, OrderV1>("totals", &"ann".to_owned())?,
        Some(order("o", 120))
    );
    Ok(())
}

#[test]
fn a_savepoint_check_accepts_compatible_store_schemas_and_names_subject_version_and_field() -> R<()>
{
    let registry = registry()?;
    let subject = Subject::value_of(&format!("{}-totals-changelog", topic("app")));
    let v1: AvroSerde<OrderV1> = AvroSerde::new(&registry, ORDER_V1, subject.clone())?;
    v1.serialize(&order("o1", 1))?; // registers version 1
    let v2: AvroSerde<OrderV2> = AvroSerde::new(&registry, ORDER_V2, subject.clone())?;
    assert_eq!(
        v2.reads_format(&v1.format()),
        Some(Ok(())),
        "a field with a default"
    );
    assert_eq!(v1.reads_format(&v1.format()), Some(Ok(())));
    let v3 = GenericAvroSerde::new(&registry, ORDER_V3, subject)?;
    let why = v3
        .reads_format(&v1.format())
        .ok_or("an Avro format")?
        .expect_err("customer has no default");
    for says in [v1.subject(), "version 1", "customer"] {
        assert!(why.contains(says), "`{says}` missing from: {why}");
    }
    assert_eq!(
        v3.reads_format("utf8"),
        None,
        "not Avro: the equality rule applies"
    );
    Ok(())
}
