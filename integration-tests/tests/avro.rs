//! Avro input against the real broker and a real schema registry that is down when the app
//! starts: a registry out of reach is not the records' fault, so the app neither stops nor
//! dead-letters them; its thread starts over until the registry answers, then every order
//! comes out exactly once.

use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use eddy::serde::Serde;
use eddy_avro::{GenericAvroSerde, Registry, Subject};
use eddy_integration_tests::{eventually, with_log_tails, AppProcess, WordcountRun};
use eddy_testkit::{repository_root, Isolation};

const ORDER: &str = r#"{"type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "id", "type": "string"}, {"name": "cents", "type": "long"}]}"#;
const ORDERS: usize = 500;

/// A registry of this test's own on `port`, so that it can be stopped and started again.
fn registry(action: &str, port: u16) -> anyhow::Result<String> {
    let output = Command::new("bash")
        .arg(repository_root().join("compose/local/registry.sh"))
        .arg(action)
        .env("EDDY_REGISTRY_PORT", port.to_string())
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "registry.sh {action} on port {port}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The schema id `ORDER` gets in a fresh registry at `url`, with `ORDERS` orders encoded.
fn encode_orders(url: &str, topic: &str) -> anyhow::Result<(u32, Vec<Vec<u8>>)> {
    use eddy_avro::apache_avro::types::Value;
    let serde = GenericAvroSerde::new(
        &Registry::builder(url).build()?,
        ORDER,
        Subject::value_of(topic),
    )?;
    let mut encoded = Vec::new();
    for i in 0..ORDERS {
        let order = Value::Record(vec![
            ("id".to_owned(), Value::String(format!("o{i}"))),
            ("cents".to_owned(), Value::Long(i64::try_from(i)? * 10)),
        ]);
        encoded.push(
            serde
                .serialize(&order)?
                .ok_or_else(|| anyhow::anyhow!("null"))?,
        );
    }
    let id = u32::from_be_bytes([encoded[0][1], encoded[0][2], encoded[0][3], encoded[0][4]]);
    Ok((id, encoded))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Forwards every connection to `listener` to `port` on loopback, until the test ends.
fn forward(listener: TcpListener, port: u16) {
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
                continue;
            };
            let pairs = [
                (client.try_clone(), server.try_clone()),
                (server.try_clone(), client.try_clone()),
            ];
            for (from, to) in pairs {
                let (Ok(mut from), Ok(mut to)) = (from, to) else {
                    continue;
                };
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
}

#[test]
fn orders_wait_for_a_registry_that_is_down_and_then_come_out_once() -> anyhow::Result<()> {
    let started = Instant::now();
    let (port, elsewhere) = (free_port()?, free_port()?);
    let run = WordcountRun::new("avro-orders", 3)?;
    let dead_letters = format!("{}-dead", run.input);
    run.kafka.create_topic(&dead_letters, 1)?;

    // Orders written while a registry ran, then the registry goes away.
    let url = registry("start", port)?;
    let (id, encoded) = encode_orders(&url, &run.input)?;
    registry("stop", port)?;
    run.kafka.produce(
        &run.input,
        encoded
            .iter()
            .enumerate()
            .map(|(i, bytes)| (Some(format!("o{i}").into_bytes()), bytes.clone())),
    )?;

    let mut spec = run.spec(
        "a",
        &[
            ("EDDY__ERRORS__DESERIALIZATION", "dead_letter"),
            ("EDDY__ERRORS__DEAD_LETTER_TOPIC", &dead_letters),
        ],
    );
    spec.binary = "avro-orders".to_owned();
    spec.env.push(("AVRO_REGISTRY_URL".to_owned(), url.clone()));
    let mut app = AppProcess::start("a", spec)?;
    let ops = app.ops()?;
    let restarted = eventually("the thread starts over", Duration::from_secs(120), || {
        Ok(ops.metric("eddy_thread_restarts_total", &[]).unwrap_or(0.0) >= 1.0)
    });
    let waited = restarted.and_then(|()| {
        anyhow::ensure!(
            app.exited()?.is_none(),
            "the app stopped:\n{}",
            app.log_tail(30)
        );
        // The registry comes back with its schemas: a fresh one elsewhere is given the
        // same schema (a fresh registry gives it the same id), and only then is it
        // reachable at the app's address, through a forwarder.
        let url_again = registry("start", elsewhere)?;
        let (id_again, _) = encode_orders(&url_again, &run.input)?;
        anyhow::ensure!(
            id_again == id,
            "schema id {id_again} in the new registry, {id} before"
        );
        forward(TcpListener::bind(("127.0.0.1", port))?, elsewhere);
        run.kafka
            .tail(&run.output)?
            .wait_for(u64::try_from(ORDERS)?, Duration::from_secs(120))?;
        Ok(())
    });
    let waited = waited.map_err(|e| with_log_tails(std::slice::from_ref(&app), e));
    let restarts = ops.metric("eddy_thread_restarts_total", &[]);
    app.terminate(Duration::from_secs(60))?;
    registry("stop", elsewhere)?;
    waited?;
    let restarts = restarts?;
    assert!(
        restarts >= 1.0,
        "the registry outage made the thread start over"
    );

    let mut got: Vec<String> = run
        .kafka
        .read_all(&run.output, Isolation::ReadCommitted)?
        .iter()
        .map(|r| r.value_str())
        .collect();
    got.sort();
    let mut expected: Vec<String> = (0..ORDERS).map(|i| format!("o{i}:{}", i * 10)).collect();
    expected.sort();
    assert_eq!(got, expected, "every order once");
    let dead = run
        .kafka
        .read_all(&dead_letters, Isolation::ReadCommitted)?;
    assert!(
        dead.is_empty(),
        "{} orders dead-lettered for a registry outage",
        dead.len()
    );
    run.assert_no_open_transaction(std::slice::from_ref(&run.output))?;
    println!(
        "avro: {ORDERS} orders read after a registry outage, {restarts} start-overs, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
