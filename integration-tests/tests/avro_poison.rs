//! Poison records among Avro orders, against the real broker and a real schema registry:
//! under `errors.deserialization = dead_letter`, `avro-orders` writes every good order once
//! and sends a record with a bad magic byte, one naming a schema id the registry does not
//! know and one whose datum does not decode to the dead-letter topic, each with its origin
//! and its error in headers. Nothing is lost.

use std::time::Duration;

use eddy::serde::Serde;
use eddy_avro::{AvroSerde, Registry, Subject};
use eddy_integration_tests::{eventually, with_log_tails, AppProcess, WordcountRun};
use eddy_testkit::{Isolation, ReadRecord};

const ORDER: &str = r#"{"type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "id", "type": "string"}, {"name": "cents", "type": "long"}]}"#;
const GOOD: usize = 90;
const WAIT: Duration = Duration::from_secs(120);

/// An order as the test writes it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Order {
    id: String,
    cents: i64,
}

/// The poison records (key, value) and what the error each gets must say, given a good
/// order's encoding `good`.
fn poison(good: &[u8]) -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let mut unknown_id = vec![0, 0x7f, 0xff, 0xff, 0xfe];
    unknown_id.extend_from_slice(&good[5..]);
    // The good order's schema id, then a string that claims 2 bytes and has 1.
    let mut undecodable = good[..5].to_vec();
    undecodable.extend_from_slice(&[4, b'p']);
    vec![
        (
            "bad-magic",
            br#"{"id": "p1", "cents": 1}"#.to_vec(),
            "magic byte 0x7b",
        ),
        ("unknown-id", unknown_id, "schema id 2147483646"),
        ("undecodable", undecodable, "Could not transform bytes"),
    ]
}

/// The value of `record`'s header `name`.
fn header(record: &ReadRecord, name: &str) -> Option<String> {
    record
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

#[test]
fn poison_avro_records_go_to_the_dead_letter_topic_and_every_good_order_comes_out_once(
) -> anyhow::Result<()> {
    let url = eddy_testkit::schema_registry_url()?;
    let run = WordcountRun::new("avro-poison", 2)?;
    let dead_letters = format!("{}-dead", run.input);
    run.kafka.create_topic(&dead_letters, 1)?;
    let serde: AvroSerde<Order> = AvroSerde::new(
        &Registry::builder(&url).build()?,
        ORDER,
        Subject::value_of(&run.input),
    )?;
    let mut good = Vec::new();
    for i in 0..GOOD {
        let order = Order {
            id: format!("o{i}"),
            cents: i64::try_from(i)? * 10,
        };
        let bytes = serde
            .serialize(&order)?
            .ok_or_else(|| anyhow::anyhow!("null"))?;
        good.push((Some(order.id.into_bytes()), bytes));
    }
    let poison = poison(&good[0].1);
    // Each poison record between good ones.
    let mut input = Vec::new();
    for (chunk, (key, value, _)) in good.chunks(GOOD / 3).zip(&poison) {
        input.extend_from_slice(chunk);
        input.push((Some(key.as_bytes().to_vec()), value.clone()));
    }
    input.extend_from_slice(&good[GOOD / 3 * 3..]);
    run.kafka.produce(&run.input, input)?;

    let mut spec = run.spec(
        "a",
        &[
            ("EDDY__ERRORS__DESERIALIZATION", "dead_letter"),
            ("EDDY__ERRORS__DEAD_LETTER_TOPIC", &dead_letters),
        ],
    );
    spec.binary = "avro-orders".to_owned();
    spec.env.push(("AVRO_REGISTRY_URL".to_owned(), url));
    let mut app = AppProcess::start("a", spec)?;
    let (mut outputs, mut letters) = (run.kafka.tail(&run.output)?, run.kafka.tail(&dead_letters)?);
    let (outs, dead) = (u64::try_from(GOOD)?, u64::try_from(poison.len())?);
    eventually(
        "every good order out, every poison record dead-lettered",
        WAIT,
        || {
            if let Some(status) = app.exited()? {
                anyhow::bail!("the app exited with {status}");
            }
            let wait = Duration::from_millis(100);
            Ok(outputs.count(wait)? >= outs && letters.count(wait)? >= dead)
        },
    )
    .map_err(|e| with_log_tails(std::slice::from_ref(&app), e))?;
    app.terminate(Duration::from_secs(60))?;

    let mut got: Vec<String> = run
        .kafka
        .read_all(&run.output, Isolation::ReadCommitted)?
        .iter()
        .map(ReadRecord::value_str)
        .collect();
    got.sort();
    let mut expected: Vec<String> = (0..GOOD).map(|i| format!("o{i}:{}", i * 10)).collect();
    expected.sort();
    assert_eq!(got, expected, "every good order once");

    let stored = run.kafka.read_all(&run.input, Isolation::ReadCommitted)?;
    let letters = run
        .kafka
        .read_all(&dead_letters, Isolation::ReadCommitted)?;
    assert_eq!(letters.len(), poison.len(), "the poison records once each");
    for (key, value, says) in &poison {
        let origin = stored
            .iter()
            .find(|r| r.key.as_deref() == Some(key.as_bytes()))
            .ok_or_else(|| anyhow::anyhow!("`{key}` is not in the input"))?;
        let letter = letters
            .iter()
            .find(|r| r.key.as_deref() == Some(key.as_bytes()))
            .ok_or_else(|| anyhow::anyhow!("`{key}` was not dead-lettered: {letters:?}"))?;
        assert_eq!(letter.value.as_ref(), Some(value), "`{key}` kept as it was");
        assert_eq!(header(letter, "eddy.topic"), Some(run.input.clone()));
        assert_eq!(
            header(letter, "eddy.partition"),
            Some(origin.partition.to_string())
        );
        assert_eq!(
            header(letter, "eddy.offset"),
            Some(origin.offset.to_string())
        );
        let error = header(letter, "eddy.error").unwrap_or_default();
        assert!(
            error.contains("cannot deserialize the value") && error.contains(says),
            "`{key}`'s error names the record and says `{says}`: {error}"
        );
    }
    // Nothing left behind: the group's offsets are at the input's end.
    let ends = run
        .kafka
        .end_offsets(&run.input, Isolation::ReadCommitted)?;
    let committed = run
        .kafka
        .committed_offsets(&run.application_id, &run.input)?;
    assert_eq!(
        committed,
        ends.iter().copied().map(Some).collect::<Vec<_>>(),
        "the group committed past every input record"
    );
    run.assert_no_open_transaction(&[run.output.clone(), dead_letters])?;
    Ok(())
}
