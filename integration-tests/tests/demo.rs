//! `make demo` itself: the demo binary runs to its end and reports exactly-once verified.

use std::process::Command;

use eddy_integration_tests::workspace_binary;

#[test]
fn the_demo_runs_to_its_end_and_verifies_exactly_once() -> anyhow::Result<()> {
    let kafka = eddy_testkit::Kafka::shared()?;
    let output = Command::new(workspace_binary("eddy-demo")?)
        .env("EDDY_BOOTSTRAP_SERVERS", kafka.bootstrap_servers())
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for step in [
        "3 instances of wordcount are ready",
        "kill -9 instance b",
        "instance d joined",
        "exactly-once: verified",
    ] {
        assert!(stdout.contains(step), "missing `{step}` in:\n{stdout}");
    }
    Ok(())
}
