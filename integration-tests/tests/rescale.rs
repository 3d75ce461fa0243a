//! Rescaling under load against the real broker: 1 → 2 → 4 → 2 instances while input keeps
//! arriving, with checkpoints in a directory, again on a real S3 server under the classic
//! group protocol, and again with standbys and warm-up before join. Every word's counts stay
//! exactly 1..n, moved tasks start from checkpoints, and the pause of each step is printed.

use eddy_integration_tests::rescale::{rescale_under_load, CHUNK, TICK};
use eddy_integration_tests::{borrowed, expected_counts, SnapshotTarget, WordcountRun};

#[test]
fn scaling_out_and_in_under_load_keeps_exactly_once() -> anyhow::Result<()> {
    let run = WordcountRun::new("rescale", 6)?;
    let target = SnapshotTarget::directory(&run);
    rescale(&run, &target, "checkpoints", &[])
}

#[test]
fn scaling_with_checkpoints_on_s3_under_the_classic_protocol_keeps_exactly_once(
) -> anyhow::Result<()> {
    let run = WordcountRun::new("rescale-s3", 6)?;
    let target = SnapshotTarget::s3(&run)?;
    // The classic protocol's two-round rebalances, kept under test beside the default.
    rescale(
        &run,
        &target,
        "checkpoints on S3, classic group protocol",
        &[("EDDY__PROCESSING__GROUP_PROTOCOL", "classic")],
    )
}

#[test]
fn scaling_with_standbys_and_warm_up_keeps_exactly_once() -> anyhow::Result<()> {
    let run = WordcountRun::new("rescale", 6)?;
    let target = SnapshotTarget::directory(&run);
    rescale(
        &run,
        &target,
        "checkpoints, 1 standby, warm-up before join",
        &[
            ("EDDY__PROCESSING__STANDBY_REPLICAS", "1"),
            ("EDDY__PROCESSING__WARMUP_BEFORE_JOIN", "true"),
        ],
    )
}

/// Runs 1 → 2 → 4 → 2 under load with checkpoints into `target` and `extra` settings,
/// prints the pauses and checks exactness.
fn rescale(
    run: &WordcountRun,
    target: &SnapshotTarget,
    label: &str,
    extra: &[(&str, &str)],
) -> anyhow::Result<()> {
    let mut settings = vec![("EDDY__SNAPSHOT__CHECKPOINT_INTERVAL_MS", "2000")];
    settings.extend_from_slice(extra);
    let settings = target.settings(&settings);
    let env = borrowed(&settings);

    let mut rescaled = rescale_under_load(run, &env)?;
    println!("rescale under load ({label}; {CHUNK} lines per {TICK:?} offered):");
    for pause in &rescaled.pauses {
        println!("  {pause}");
    }
    let expected = expected_counts(rescaled.produced.iter().map(String::as_str));
    run.finish_exactly(&mut rescaled.apps, &expected)?;
    let logs = &rescaled.logs;
    // The default (`auto`) takes the consumer protocol from these brokers (their session
    // timeout is the app's); a variant that sets classic keeps it.
    let classic = extra
        .iter()
        .any(|(k, v)| *k == "EDDY__PROCESSING__GROUP_PROTOCOL" && *v == "classic");
    if !classic && std::env::var_os("EDDY__PROCESSING__GROUP_PROTOCOL").is_none() {
        assert!(
            rescaled.auto_chose_consumer(),
            "processing.group_protocol = auto should have chosen the consumer protocol"
        );
    }
    if classic {
        // A coordinator that refuses a transaction's offsets from the generation a
        // rebalance just replaced fenced nothing: the thread rewinds its tasks on the same
        // consumer and producer instead of starting a generation over.
        let started_over: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("aborting and rejoining from the last commit"))
            .filter(|l| {
                l.contains("generation id is not valid") || l.contains("rebalance in progress")
            })
            .collect();
        let rewound = logs
            .matches("the tasks restart from the last commit on the same consumer and producer")
            .count();
        println!("  offsets refused during a rebalance: {rewound} rewinds in place");
        assert!(
            started_over.is_empty(),
            "threads started over for offsets refused during a rebalance:\n{}",
            started_over.join("\n")
        );
    }
    assert!(
        logs.contains("task state loaded from its latest checkpoint"),
        "instances that took over tasks should have started them from checkpoints"
    );
    if extra
        .iter()
        .any(|(k, v)| *k == "EDDY__PROCESSING__WARMUP_BEFORE_JOIN" && *v == "true")
    {
        assert!(
            logs.contains("warm-up done"),
            "joining instances warm up first"
        );
    }
    Ok(())
}
