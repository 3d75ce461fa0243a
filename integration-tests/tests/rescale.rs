//! Rescaling under load against the real broker: 1 → 2 → 4 → 2 instances while input keeps
//! arriving, with checkpoints in a directory, again on a real S3 server under the classic
//! group protocol, and again with standbys and warm-up before join. Every word's counts stay exactly 1..n, moved tasks start
//! from checkpoints, and the processing pause of each step is printed.

use std::time::{Duration, Instant};

use eddy_integration_tests::load::SteadyLoad;
use eddy_integration_tests::{borrowed, expected_counts, SnapshotTarget, WordcountRun};

/// Lines per input chunk and chunks per second of the steady load.
const CHUNK: usize = 100;
const TICK: Duration = Duration::from_millis(100);

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

    let load = SteadyLoad::start(run.kafka, &run.input, 1_000, CHUNK, 400, TICK);

    let mut apps = vec![run.start("a", &env)?];
    let mut tail = run.kafka.tail(&run.output)?;
    let mut samples: Vec<(Instant, u64)> = Vec::new();
    let start = Instant::now();
    let mut steps: Vec<(&str, Instant)> = Vec::new();
    let plan: [(&str, u64); 4] = [("1 → 2", 10), ("2 → 4", 22), ("4 → 2", 34), ("end", 46)];
    for (step, at) in plan {
        while start.elapsed() < Duration::from_secs(at) {
            samples.push((Instant::now(), tail.count(Duration::from_millis(50))?));
        }
        steps.push((step, Instant::now()));
        match step {
            "1 → 2" => apps.push(run.start("b", &env)?),
            "2 → 4" => {
                apps.push(run.start("c", &env)?);
                apps.push(run.start("d", &env)?);
            }
            "4 → 2" => {
                for mut app in apps.drain(2..) {
                    app.terminate(Duration::from_secs(60))?;
                }
            }
            _ => {}
        }
    }
    let produced = load.stop()?;
    let expected = expected_counts(produced.iter().map(String::as_str));

    // The longest stretch without new output after each step (and before the first one),
    // and when it ended, in seconds since the load began.
    let longest_gap = |from: Instant, to: Instant| {
        let mut last_change = from;
        let mut last_count = None;
        let mut longest = (Duration::ZERO, 0.0);
        for &(t, c) in samples.iter().filter(|(t, _)| *t >= from && *t < to) {
            if last_count != Some(c) {
                if t - last_change > longest.0 {
                    longest = (t - last_change, (t - start).as_secs_f64());
                }
                last_change = t;
                last_count = Some(c);
            }
        }
        longest
    };
    println!(
        "rescale under load ({label}; {} lines per {TICK:?} offered):",
        CHUNK
    );
    // Steady from the first output on (before it, the app was starting).
    let first_output = samples
        .iter()
        .find(|(_, c)| *c > 0)
        .map_or(steps[0].1, |(t, _)| *t);
    let (gap, ended) = longest_gap(first_output, steps[0].1);
    println!("  steady, before any step: longest pause {gap:?}, ended at {ended:.1} s");
    for pair in steps.windows(2) {
        let (gap, ended) = longest_gap(pair[0].1, pair[1].1);
        println!(
            "  {} (at {:.1} s): longest pause {gap:?}, ended at {ended:.1} s",
            pair[0].0,
            (pair[0].1 - start).as_secs_f64()
        );
    }

    let logs: String = apps
        .iter()
        .map(eddy_integration_tests::AppProcess::log_text)
        .collect();
    run.finish_exactly(&mut apps, &expected)?;
    // The default (`auto`) takes the consumer protocol from these brokers (their session
    // timeout is the app's); a variant that sets classic keeps it.
    let classic = extra
        .iter()
        .any(|(k, v)| *k == "EDDY__PROCESSING__GROUP_PROTOCOL" && *v == "classic");
    if !classic && std::env::var_os("EDDY__PROCESSING__GROUP_PROTOCOL").is_none() {
        assert!(
            logs.contains("group protocol chosen") && logs.contains("protocol=Consumer"),
            "processing.group_protocol = auto should have chosen the consumer protocol"
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
