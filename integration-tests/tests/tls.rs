//! Eddy over TLS and SASL/SCRAM: a broker of the test's own with a self-signed certificate
//! listens with TLS and with SASL_SSL (SCRAM-SHA-512); wordcount instances connect through
//! each, with `kafka.properties.*`, and count exactly. The SCRAM password never shows in
//! the instance's log.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use eddy_integration_tests::{expected_counts, generate_lines, AppProcess, WordcountRun};
use eddy_testkit::OwnCluster;

/// Client port of the broker; TLS listens on +100, SASL_SSL on +200.
const PORT: u16 = 19_392;
const STORE_PASSWORD: &str = "broker-store-pw";
const SCRAM_PASSWORD: &str = "alice-scram-pw-7731";

/// A PKCS12 keystore with a self-signed certificate for 127.0.0.1, and that certificate in
/// PEM for the clients to trust.
fn certificate(dir: &Path) -> anyhow::Result<()> {
    let keytool = |args: &[&str]| -> anyhow::Result<()> {
        let output = Command::new("keytool").args(args).output()?;
        anyhow::ensure!(
            output.status.success(),
            "keytool {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(())
    };
    let store = dir.join("broker.p12").display().to_string();
    let pem = dir.join("ca.pem").display().to_string();
    keytool(&[
        "-genkeypair",
        "-alias",
        "broker",
        "-keyalg",
        "RSA",
        "-keysize",
        "2048",
        "-validity",
        "30",
        "-dname",
        "CN=127.0.0.1",
        "-ext",
        "SAN=IP:127.0.0.1",
        "-storetype",
        "PKCS12",
        "-keystore",
        &store,
        "-storepass",
        STORE_PASSWORD,
        "-keypass",
        STORE_PASSWORD,
    ])?;
    keytool(&[
        "-exportcert",
        "-alias",
        "broker",
        "-rfc",
        "-keystore",
        &store,
        "-storepass",
        STORE_PASSWORD,
        "-file",
        &pem,
    ])
}

#[test]
fn instances_count_exactly_over_tls_and_over_sasl_scram() -> anyhow::Result<()> {
    let certs = tempfile::tempdir()?;
    certificate(certs.path())?;
    let keystore = certs.path().join("broker.p12").display().to_string();
    let ca = certs.path().join("ca.pem").display().to_string();
    let scram_users = format!("alice={SCRAM_PASSWORD}");
    let cluster = OwnCluster::start(
        1,
        PORT,
        &[
            ("EDDY_KAFKA_SSL_KEYSTORE", &keystore),
            ("EDDY_KAFKA_SSL_PASSWORD", STORE_PASSWORD),
            ("EDDY_KAFKA_SCRAM_USERS", &scram_users),
        ],
    )?;
    let run = WordcountRun::on(cluster.kafka(), "tls", 2)?;
    let lines = generate_lines(23, 3_000, 100);
    let (first, second) = lines.split_at(1_500);
    let words = |part: &[String]| -> u64 {
        expected_counts(part.iter().map(String::as_str))
            .values()
            .sum()
    };

    // One instance over TLS processes the first half alone...
    let mut tls = run.spec(
        "tls",
        &[
            ("EDDY__KAFKA__PROPERTIES__SECURITY_PROTOCOL", "SSL"),
            ("EDDY__KAFKA__PROPERTIES__SSL_CA_LOCATION", &ca),
        ],
    );
    tls.bootstrap_servers = format!("127.0.0.1:{}", PORT + 100);
    let mut tls = AppProcess::start("tls", tls)?;
    run.produce_lines(first)?;
    run.kafka
        .tail(&run.output)?
        .wait_for(words(first), Duration::from_secs(120))
        .map_err(|e| anyhow::anyhow!("{e}\n{}", tls.log_tail(20)))?;
    tls.terminate(Duration::from_secs(60))?;

    // ...then one over SASL_SSL with SCRAM takes over its state and does the rest.
    let mut scram = run.spec(
        "scram",
        &[
            ("EDDY__KAFKA__PROPERTIES__SECURITY_PROTOCOL", "SASL_SSL"),
            ("EDDY__KAFKA__PROPERTIES__SSL_CA_LOCATION", &ca),
            ("EDDY__KAFKA__PROPERTIES__SASL_MECHANISMS", "SCRAM-SHA-512"),
            ("EDDY__KAFKA__PROPERTIES__SASL_USERNAME", "alice"),
            ("EDDY__KAFKA__PROPERTIES__SASL_PASSWORD", SCRAM_PASSWORD),
        ],
    );
    scram.bootstrap_servers = format!("127.0.0.1:{}", PORT + 200);
    let mut scram = AppProcess::start("scram", scram)?;
    run.produce_lines(second)?;
    run.kafka
        .tail(&run.output)?
        .wait_for(words(&lines), Duration::from_secs(120))
        .map_err(|e| anyhow::anyhow!("{e}\n{}", scram.log_tail(20)))?;
    scram.terminate(Duration::from_secs(60))?;

    let violations = run.violations(&expected_counts(lines.iter().map(String::as_str)))?;
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    run.assert_settled()?;
    assert!(
        !scram.log_text().contains(SCRAM_PASSWORD),
        "the SCRAM password reached the log"
    );
    Ok(())
}
