//! The services tests run against besides Kafka, each from its environment variable when set
//! (as `make test` sets them), else started (or reused) on first use by its script under
//! `compose/local/`: the schema registry, PostgreSQL and an S3 server.

use std::process::Command;
use std::sync::OnceLock;

use crate::{repository_root, TestkitError};

static REGISTRY: OnceLock<Result<String, String>> = OnceLock::new();
static POSTGRES: OnceLock<Result<String, String>> = OnceLock::new();
static S3: OnceLock<Result<String, String>> = OnceLock::new();

/// The bucket `compose/local/s3.sh` creates.
pub const S3_BUCKET: &str = "eddy-test";
/// The access key `compose/local/s3.sh` accepts.
pub const S3_ACCESS_KEY_ID: &str = "eddy";
/// The secret key `compose/local/s3.sh` accepts.
pub const S3_SECRET_ACCESS_KEY: &str = "eddy-secret";

/// The Confluent-compatible URL of the schema registry shared by every test of this process
/// (`EDDY_SCHEMA_REGISTRY_URL`, else `compose/local/registry.sh start`).
///
/// # Errors
/// Fails loudly, with the start script's output, when no registry can be started.
pub fn schema_registry_url() -> Result<String, TestkitError> {
    service_url(
        &REGISTRY,
        "EDDY_SCHEMA_REGISTRY_URL",
        "compose/local/registry.sh",
        "schema registry",
    )
}

/// The connection URL of the PostgreSQL server shared by every test of this process
/// (`EDDY_POSTGRES_URL`, else `compose/local/postgres.sh start`), with prepared transactions
/// enabled.
///
/// # Errors
/// Fails loudly, with the start script's output, when no server can be started.
pub fn postgres_url() -> Result<String, TestkitError> {
    service_url(
        &POSTGRES,
        "EDDY_POSTGRES_URL",
        "compose/local/postgres.sh",
        "PostgreSQL server",
    )
}

/// The endpoint of the S3-compatible server shared by every test of this process
/// (`EDDY_S3_ENDPOINT`, else `compose/local/s3.sh start`), holding the bucket [`S3_BUCKET`]
/// and accepting [`S3_ACCESS_KEY_ID`] / [`S3_SECRET_ACCESS_KEY`].
///
/// # Errors
/// Fails loudly, with the start script's output, when no server can be started.
pub fn s3_endpoint() -> Result<String, TestkitError> {
    service_url(&S3, "EDDY_S3_ENDPOINT", "compose/local/s3.sh", "S3 server")
}

/// The app settings (`EDDY__SNAPSHOT__S3_*` variables) that reach [`s3_endpoint`].
///
/// # Errors
/// As [`s3_endpoint`].
pub fn s3_environment() -> Result<Vec<(String, String)>, TestkitError> {
    Ok(vec![
        ("EDDY__SNAPSHOT__S3_ENDPOINT".to_owned(), s3_endpoint()?),
        (
            "EDDY__SNAPSHOT__S3_REGION".to_owned(),
            "us-east-1".to_owned(),
        ),
        (
            "EDDY__SNAPSHOT__S3_ACCESS_KEY_ID".to_owned(),
            S3_ACCESS_KEY_ID.to_owned(),
        ),
        (
            "EDDY__SNAPSHOT__S3_SECRET_ACCESS_KEY".to_owned(),
            S3_SECRET_ACCESS_KEY.to_owned(),
        ),
    ])
}

fn service_url(
    cell: &OnceLock<Result<String, String>>,
    variable: &str,
    script: &str,
    service: &'static str,
) -> Result<String, TestkitError> {
    let script = repository_root().join(script);
    let url = cell.get_or_init(|| {
        if let Ok(url) = std::env::var(variable) {
            return Ok(url);
        }
        let output = Command::new("bash")
            .arg(&script)
            .arg("start")
            .output()
            .map_err(|e| format!("could not run bash: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "exit status {}\n{stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        stdout
            .lines()
            .last()
            .map(|l| l.trim().to_owned())
            .ok_or_else(|| "the start script printed no URL".to_owned())
    });
    url.clone().map_err(|reason| TestkitError::ServiceStart {
        service,
        script: script.display().to_string(),
        reason,
    })
}
