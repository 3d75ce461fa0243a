//! A small OTLP/HTTP (JSON) receiver for tests: accepts `POST /v1/traces` and
//! `POST /v1/metrics` on 127.0.0.1 and keeps what it received.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::{eventually_every, on_timeout};

/// One export request the receiver accepted.
#[derive(Debug, Clone)]
pub struct Export {
    /// `/v1/traces` or `/v1/metrics`.
    pub path: String,
    /// Its JSON body.
    pub body: Value,
}

/// A running receiver; it stops with the test process.
#[derive(Debug, Clone)]
pub struct OtlpReceiver {
    /// Its base URL (`http://127.0.0.1:<port>`).
    pub endpoint: String,
    received: Arc<Mutex<Vec<Export>>>,
}

impl OtlpReceiver {
    /// Listens on a free loopback port.
    ///
    /// # Errors
    /// No port can be bound.
    pub fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the OTLP receiver")?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    let _ = serve(stream, &store);
                });
            }
        });
        Ok(OtlpReceiver { endpoint, received })
    }

    /// Everything received so far.
    pub fn exports(&self) -> Vec<Export> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Names of every span received.
    pub fn span_names(&self) -> Vec<String> {
        self.exports()
            .iter()
            .filter(|e| e.path == "/v1/traces")
            .flat_map(|e| each(&e.body["resourceSpans"]))
            .flat_map(|r| each(&r["scopeSpans"]))
            .flat_map(|s| each(&s["spans"]))
            .filter_map(|span| span["name"].as_str().map(str::to_owned))
            .collect()
    }

    /// The largest value received for sum metric `name` (over its data points).
    pub fn max_sum(&self, name: &str) -> Option<f64> {
        self.exports()
            .iter()
            .filter(|e| e.path == "/v1/metrics")
            .flat_map(|e| each(&e.body["resourceMetrics"]))
            .flat_map(|r| each(&r["scopeMetrics"]))
            .flat_map(|s| each(&s["metrics"]))
            .filter(|m| m["name"].as_str() == Some(name))
            .flat_map(|m| each(&m["sum"]["dataPoints"]))
            .filter_map(|p| number(&p["asInt"]).or_else(|| number(&p["asDouble"])))
            .reduce(f64::max)
    }

    /// Waits until `check` holds for the receiver, failing after `deadline`.
    ///
    /// # Errors
    /// `check` still fails at the deadline.
    pub fn wait_for(
        &self,
        what: &str,
        deadline: Duration,
        check: impl Fn(&Self) -> bool,
    ) -> anyhow::Result<()> {
        let interval = Duration::from_millis(100);
        let waited = eventually_every(
            &format!("OTLP receiver: {what}"),
            deadline,
            interval,
            || Ok(check(self)),
        );
        on_timeout(waited, || {
            bail!(
                "OTLP receiver: no {what} after {deadline:?}; got spans {:?}",
                self.span_names()
            )
        })
    }
}

fn each(value: &Value) -> Vec<Value> {
    value.as_array().cloned().unwrap_or_default()
}

/// OTLP JSON writes 64-bit integers as strings or numbers.
fn number(value: &Value) -> Option<f64> {
    value
        .as_f64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

fn serve(stream: TcpStream, store: &Mutex<Vec<Export>>) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let (status, reply) = match serde_json::from_slice::<Value>(&body) {
            Ok(body) => {
                store
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Export { path, body });
                ("200 OK", "{}")
            }
            Err(_) => ("400 Bad Request", "{\"error\":\"not JSON\"}"),
        };
        let mut out = &stream;
        write!(
            out,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
            reply.len()
        )?;
    }
}
