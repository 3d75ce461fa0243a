//! `eddy new` for real: the created project builds and its test passes against the local
//! framework sources.

use std::process::Command;

use eddy_integration_tests::workspace_binary;

#[test]
fn eddy_new_creates_a_project_that_builds_and_passes_its_test() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let framework = eddy_testkit::repository_root().join("framework");
    let output = Command::new(workspace_binary("eddy")?)
        .args(["new", "orders-counter", "--dir"])
        .arg(dir.path())
        .arg("--eddy-path")
        .arg(&framework)
        .output()?;
    assert!(output.status.success(), "eddy new failed: {output:?}");
    let project = dir.path().join("orders-counter");
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "src/main.rs",
        "src/lib.rs",
        "tests/topology.rs",
        "Dockerfile",
        "compose.yml",
        "README.md",
        "eddy.toml",
    ] {
        assert!(project.join(file).is_file(), "{file} missing");
    }
    let compose = std::fs::read_to_string(project.join("compose.yml"))?;
    assert!(
        compose.contains("EDDY__APPLICATION__ID: orders-counter"),
        "{compose}"
    );

    // Builds with the same target directory as the workspace (CARGO_TARGET_DIR is inherited),
    // so the C/C++ dependencies are not compiled again.
    let test = Command::new(env!("CARGO"))
        .arg("test")
        .arg("--manifest-path")
        .arg(project.join("Cargo.toml"))
        .output()?;
    let stdout = String::from_utf8_lossy(&test.stdout);
    let stderr = String::from_utf8_lossy(&test.stderr);
    assert!(
        test.status.success(),
        "cargo test failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(
            "test each_event_emits_its_keys_new_count_and_blank_events_are_dropped ... ok"
        ),
        "{stdout}"
    );
    Ok(())
}
