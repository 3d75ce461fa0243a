//! The schema registry tests run against: `EDDY_SCHEMA_REGISTRY_URL` when set (as `make test`
//! sets it), else the local Apicurio Registry that `compose/local/registry.sh start` runs (or
//! reuses) on first use.

use std::process::Command;
use std::sync::OnceLock;

use crate::{repository_root, TestkitError};

static URL: OnceLock<Result<String, String>> = OnceLock::new();

/// The Confluent-compatible URL of the registry shared by every test of this process.
///
/// # Errors
/// Fails loudly, with the start script's output, when no registry can be started.
pub fn schema_registry_url() -> Result<String, TestkitError> {
    let script = repository_root().join("compose/local/registry.sh");
    let url = URL.get_or_init(|| {
        if let Ok(url) = std::env::var("EDDY_SCHEMA_REGISTRY_URL") {
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
    url.clone().map_err(|reason| TestkitError::RegistryStart {
        script: script.display().to_string(),
        reason,
    })
}
