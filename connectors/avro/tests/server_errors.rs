//! A registry that answers a schema lookup with a server error (the real registry, behind a
//! proxy of the test's own that answers its first connection with HTTP 500): the error is
//! transient, not the record's fault, and the next try asks the registry again instead of
//! replaying the remembered failure.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use eddy::prelude::*;
use eddy_avro::{AvroSerde, Registry, Subject};
use serde::{Deserialize, Serialize};

type R<T> = Result<T, Box<dyn std::error::Error>>;

const ORDER: &str = r#"{"type": "record", "name": "Order", "namespace": "shop",
    "fields": [{"name": "id", "type": "string"}, {"name": "cents", "type": "long"}]}"#;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: String,
    cents: i64,
}

/// Reads an HTTP request's head from `client` and answers HTTP 500, closing the connection.
fn fail(mut client: TcpStream) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0; 1];
    while !head.ends_with(b"\r\n\r\n") && client.read(&mut byte)? == 1 {
        head.push(byte[0]);
    }
    let body = r#"{"error_code": 50001, "message": "injected by the test"}"#;
    write!(
        client,
        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Copies `from` to `to` until `from` ends.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

/// The URL of a proxy in front of the registry at `url` whose first connection gets HTTP 500
/// and the others the registry.
fn failing_once(url: &str) -> R<String> {
    let upstream = reqwest::Url::parse(url)?;
    let port = upstream.port().ok_or("the registry URL names its port")?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let mut proxied = upstream.clone();
    proxied
        .set_port(Some(listener.local_addr()?.port()))
        .map_err(|()| "a URL with a port")?;
    std::thread::spawn(move || {
        for (n, client) in listener.incoming().flatten().enumerate() {
            if n == 0 {
                let _ = fail(client);
                continue;
            }
            let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
                continue;
            };
            if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                pipe(client, server);
                pipe(s, c);
            }
        }
    });
    Ok(proxied.to_string())
}

#[test]
fn a_server_error_looking_up_a_schema_is_transient_and_the_next_try_asks_again() -> R<()> {
    let url = eddy_testkit::schema_registry_url()?;
    let subject = Subject::value_of(&eddy_testkit::unique_name("server-errors"));
    let writer: AvroSerde<Order> =
        AvroSerde::new(&Registry::builder(&url).build()?, ORDER, subject.clone())?;
    let order = Order {
        id: "o1".to_owned(),
        cents: 5,
    };
    let bytes = writer.serialize(&order)?;
    let reader: AvroSerde<Order> = AvroSerde::new(
        &Registry::builder(&failing_once(&url)?).build()?,
        ORDER,
        subject,
    )?;
    let err = reader
        .deserialize(bytes.as_deref())
        .expect_err("the first lookup gets HTTP 500");
    assert!(err.is_transient(), "{err}");
    assert!(err.message().contains("status 500"), "{err}");
    assert_eq!(
        reader.deserialize(bytes.as_deref())?,
        order,
        "the second try reaches the registry"
    );
    Ok(())
}
