//! TLS to PostgreSQL: a server of the test's own that takes TLS connections only, with a
//! certificate from a CA made for the test. The sink connects when it trusts that CA and is
//! refused, with an error naming the certificate, when it trusts only the system's roots.

use std::process::Command;

use eddy::task::TaskId;
use eddy::two_phase::{CommitId, Resolved, TwoPhaseSink};
use eddy_postgres::{Change, PostgresSink, Table, Tls};

type R<T> = Result<T, Box<dyn std::error::Error>>;

/// A TLS-only server on a free port, stopped when dropped.
struct TlsServer {
    port: u16,
    url: String,
}

impl TlsServer {
    fn start() -> R<TlsServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let output = Command::new("bash")
            .arg(eddy_testkit::repository_root().join("compose/local/postgres.sh"))
            .arg("start")
            .env("EDDY_POSTGRES_PORT", port.to_string())
            .env("EDDY_POSTGRES_TLS", "1")
            .output()?;
        if !output.status.success() {
            return Err(format!(
                "postgres.sh start with TLS: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
            .into());
        }
        let url = String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim()
            .to_owned();
        Ok(TlsServer { port, url })
    }

    fn ca(&self) -> String {
        format!("/tmp/eddy-postgres-{}/ca.crt", self.port)
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(eddy_testkit::repository_root().join("compose/local/postgres.sh"))
            .arg("stop")
            .env("EDDY_POSTGRES_PORT", self.port.to_string())
            .output();
    }
}

fn sink(url: &str, tls: Tls) -> R<PostgresSink<String, i64>> {
    Ok(PostgresSink::new(
        "tls",
        url,
        Table::append("tls_rows", &["k", "v"])?,
        |k: &String, v: &i64| Some(Change::Row(vec![k.as_str().into(), (*v).into()])),
    )?
    .with_tls(tls))
}

#[test]
fn the_sink_connects_over_tls_when_it_trusts_the_servers_ca_and_is_refused_otherwise() -> R<()> {
    let server = TlsServer::start()?;
    assert!(server.url.contains("sslmode=require"), "{}", server.url);
    let commit = CommitId {
        application: "tls-app".to_owned(),
        task: TaskId {
            sub_topology: 0,
            partition: 0,
        },
        sequence: 1,
        owner: "o".to_owned(),
    };

    // Trusting the test's CA: the TLS-only server takes the sink's rows.
    let mut trusted = sink(&server.url, Tls::root_certificate(server.ca()))?.processor();
    let mut admin =
        postgres::Client::connect(&server.url, postgres_openssl_trusting(&server.ca())?)?;
    admin.batch_execute("CREATE TABLE tls_rows (k text NOT NULL, v bigint NOT NULL)")?;
    trusted.write(&"a".to_owned(), &1)?;
    assert!(trusted.prepare(&commit)?);
    assert_eq!(trusted.commit(&commit)?, Resolved::Done);
    let n: i64 = admin
        .query_one("SELECT count(*) FROM tls_rows", &[])?
        .get(0);
    assert_eq!(n, 1);

    // Trusting only the system's roots: the certificate is refused, and retrying cannot help.
    let mut untrusted = sink(&server.url, Tls::system_roots())?.processor();
    untrusted.write(&"b".to_owned(), &2)?;
    let e = untrusted
        .prepare(&CommitId {
            sequence: 2,
            ..commit.clone()
        })
        .expect_err("an untrusted certificate must be refused");
    assert!(!e.transient, "{e}");
    assert!(e.message.contains("certificate"), "{e}");

    // A root certificate file that does not exist is named.
    let mut missing = sink(&server.url, Tls::root_certificate("/nonexistent/ca.crt"))?.processor();
    missing.write(&"c".to_owned(), &3)?;
    let e = missing.prepare(&commit).expect_err("no such file");
    assert!(
        !e.transient && e.message.contains("/nonexistent/ca.crt"),
        "{e}"
    );
    Ok(())
}

/// A connector for the test's own client, trusting `ca`.
fn postgres_openssl_trusting(ca: &str) -> R<postgres_openssl::MakeTlsConnector> {
    let mut builder = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client())?;
    builder.set_ca_file(ca)?;
    Ok(postgres_openssl::MakeTlsConnector::new(builder.build()))
}
