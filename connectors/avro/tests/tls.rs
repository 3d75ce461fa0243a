//! A schema registry over https with a certificate from a private CA (a registry of the
//! test's own, https only): the serdes register and read through it when the client trusts
//! that CA, and fail when it trusts only the system's roots.

use std::process::Command;

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

/// An https-only registry on a free port, stopped when dropped.
struct TlsRegistry {
    port: u16,
    url: String,
}

impl TlsRegistry {
    fn script(&self, action: &str) -> std::io::Result<std::process::Output> {
        Command::new("bash")
            .arg(eddy_testkit::repository_root().join("compose/local/registry.sh"))
            .arg(action)
            .env("EDDY_REGISTRY_PORT", self.port.to_string())
            .env("EDDY_REGISTRY_TLS", "1")
            .output()
    }

    fn start() -> R<TlsRegistry> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut registry = TlsRegistry {
            port,
            url: String::new(),
        };
        let output = registry.script("start")?;
        if !output.status.success() {
            return Err(format!(
                "registry.sh start with TLS: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        registry.url = String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        Ok(registry)
    }

    fn ca(&self) -> R<Vec<u8>> {
        let home = std::env::var("EDDY_CACHE_DIR")
            .or_else(|_| std::env::var("HOME").map(|h| format!("{h}/.cache/eddy")))?;
        Ok(std::fs::read(format!(
            "{home}/run/registry-{}/ca.crt",
            self.port
        ))?)
    }
}

impl Drop for TlsRegistry {
    fn drop(&mut self) {
        let _ = self.script("stop");
    }
}

#[test]
fn serdes_work_through_an_https_registry_whose_ca_they_trust_and_fail_otherwise() -> R<()> {
    let registry = TlsRegistry::start()?;
    assert!(registry.url.starts_with("https://"), "{}", registry.url);
    let topic = eddy_testkit::unique_name("tls-orders");

    let trusted = Registry::builder(&registry.url)
        .root_certificate_pem(&registry.ca()?)
        .build()?;
    let serde: AvroSerde<Order> = AvroSerde::new(&trusted, ORDER, Subject::value_of(&topic))?;
    let order = Order {
        id: "o1".to_owned(),
        cents: 250,
    };
    let bytes = serde.serialize(&order)?;
    assert_eq!(
        serde.deserialize(bytes.as_deref())?,
        order,
        "round trip over https"
    );

    let untrusted = Registry::builder(&registry.url).build()?;
    let refused = AvroSerde::<Order>::new(&untrusted, ORDER, Subject::value_of(&topic))
        .and_then(|s| s.serialize(&order));
    assert!(
        refused.is_err(),
        "a certificate from an untrusted CA must be refused"
    );
    Ok(())
}
