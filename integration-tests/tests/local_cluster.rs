//! compose/local/cluster.sh for real: brings up instances as processes, scales them out and
//! in, and the word counts stay exact throughout.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use eddy_integration_tests::{expected_counts, generate_lines, workspace_binary, WordcountRun};

fn cluster(run: &WordcountRun, dir: &Path, args: &[&str]) -> anyhow::Result<Output> {
    let output = Command::new("bash")
        .arg(eddy_testkit::repository_root().join("compose/local/cluster.sh"))
        .args(args)
        .env("EDDY_CLUSTER_DIR", dir)
        .env("EDDY_CLUSTER_APP", &run.application_id)
        .env("EDDY_CLUSTER_INPUT", &run.input)
        .env("EDDY_CLUSTER_OUTPUT", &run.output)
        .env("EDDY_CLUSTER_BIN", workspace_binary("wordcount")?)
        .env("EDDY_BOOTSTRAP_SERVERS", run.kafka.bootstrap_servers())
        .output()?;
    if !output.status.success() {
        anyhow::bail!(
            "cluster.sh {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

fn ready_instances(run: &WordcountRun, dir: &Path) -> anyhow::Result<usize> {
    let status = cluster(run, dir, &["status"])?;
    Ok(String::from_utf8_lossy(&status.stdout)
        .lines()
        .filter(|l| l.ends_with("ready 200"))
        .count())
}

#[test]
fn the_local_cluster_scales_out_and_in_and_stays_exact() -> anyhow::Result<()> {
    let run = WordcountRun::new("cluster", 6)?;
    let dir = run.dir.path().join("cluster");
    cluster(&run, &dir, &["up", "2"])?;
    assert_eq!(ready_instances(&run, &dir)?, 2);

    let batch1 = generate_lines(51, 2_000, 100);
    let batch2 = generate_lines(52, 2_000, 100);
    let all = expected_counts(batch1.iter().chain(&batch2).map(String::as_str));
    run.produce_lines(&batch1)?;
    cluster(&run, &dir, &["scale", "3"])?;
    assert_eq!(ready_instances(&run, &dir)?, 3);
    run.produce_lines(&batch2)?;
    cluster(&run, &dir, &["scale", "1"])?;
    assert_eq!(ready_instances(&run, &dir)?, 1);

    let total: u64 = all.values().sum();
    run.kafka
        .tail(&run.output)?
        .wait_for(total, Duration::from_secs(300))?;
    cluster(&run, &dir, &["down"])?;
    assert_eq!(ready_instances(&run, &dir)?, 0);
    let violations = run.violations(&all)?;
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    run.assert_settled()?;
    Ok(())
}
