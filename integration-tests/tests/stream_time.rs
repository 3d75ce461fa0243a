//! Stream time is committed task state: after kill -9 and a restart, or in a fork from a
//! savepoint, a record older than what the task saw before finds the stream time it would
//! have found without the crash, so late/on-time decisions are the same either way.

use std::time::Duration;

use eddy_integration_tests::{create_savepoint, AppProcess, WordcountRun};
use eddy_testkit::Isolation;

const WAIT: Duration = Duration::from_secs(120);

/// Event times an hour ago (no retention check on the output sees them as expired), and
/// the value `<event>@<stream>` the stream-time app shows for them.
fn clock() -> (i64, impl Fn(i64, i64) -> String) {
    let base = eddy::record::wall_clock_ms() - 3_600_000;
    (base, move |event: i64, stream: i64| {
        format!("{}@{}", base + event, base + stream)
    })
}

/// Produces one record under key `k` per time of `times` (offsets from `base`) to `topic`.
fn produce(run: &WordcountRun, topic: &str, base: i64, times: &[i64]) -> anyhow::Result<()> {
    run.kafka.produce(
        topic,
        times
            .iter()
            .map(|t| (Some(b"k".to_vec()), (base + t).to_string().into_bytes())),
    )?;
    Ok(())
}

fn shown(run: &WordcountRun, topic: &str) -> anyhow::Result<Vec<String>> {
    Ok(run
        .kafka
        .read_all(topic, Isolation::ReadCommitted)?
        .iter()
        .map(|r| r.value_str().to_owned())
        .collect())
}

#[test]
fn stream_time_survives_kill_9_with_the_committed_offset() -> anyhow::Result<()> {
    let run = WordcountRun::new("stream-time", 1)?;
    let mut spec = run.spec("a", &[]);
    spec.binary = "stream-time".to_owned();
    let mut app = AppProcess::start("a", spec)?;
    let (base, at) = clock();
    let mut tail = run.kafka.tail(&run.output)?;
    produce(&run, &run.input, base, &[1_000, 5_000])?;
    tail.wait_for(2, WAIT)
        .map_err(|e| anyhow::anyhow!("{e}\n{}", app.log_tail(30)))?;

    app.kill9()?;
    app.restart()?;
    produce(&run, &run.input, base, &[2_000])?;
    tail.wait_for(3, WAIT)
        .map_err(|e| anyhow::anyhow!("{e}\n{}", app.log_tail(30)))?;
    app.terminate(Duration::from_secs(60))?;

    assert_eq!(
        shown(&run, &run.output)?,
        [at(1_000, 1_000), at(5_000, 5_000), at(2_000, 5_000)],
        "after the crash the late record must see the stream time committed before it"
    );
    Ok(())
}

/// A fork (a new application id, so no committed offsets of its own) takes its stream time
/// from the savepoint.
#[test]
fn a_fork_from_a_savepoint_resumes_its_stream_time() -> anyhow::Result<()> {
    let run = WordcountRun::new("stream-time-sp", 1)?;
    let target = eddy_integration_tests::SnapshotTarget::directory(&run);
    let mut spec = run.spec("a", &[]);
    spec.binary = "stream-time".to_owned();
    let mut original = AppProcess::start("a", spec)?;
    let (base, at) = clock();
    produce(&run, &run.input, base, &[1_000, 5_000])?;
    run.kafka
        .tail(&run.output)?
        .wait_for(2, WAIT)
        .map_err(|e| anyhow::anyhow!("{e}\n{}", original.log_tail(30)))?;
    let savepoint = create_savepoint(&run, &target)?;
    original.terminate(Duration::from_secs(60))?;

    let fork_output = eddy_testkit::unique_name("stream-time-fork-out");
    run.kafka.create_topic(&fork_output, 1)?;
    let mut spec = run.spec("fork", &[]);
    spec.binary = "stream-time".to_owned();
    spec.application_id = format!("{}-fork", run.application_id);
    spec.output_topic.clone_from(&fork_output);
    spec.env
        .push(("EDDY__SNAPSHOT__FROM_SAVEPOINT".to_owned(), savepoint));
    let mut fork = AppProcess::start("fork", spec)?;
    produce(&run, &run.input, base, &[2_000])?;
    run.kafka
        .tail(&fork_output)?
        .wait_for(1, WAIT)
        .map_err(|e| anyhow::anyhow!("{e}\n{}", fork.log_tail(30)))?;
    fork.terminate(Duration::from_secs(60))?;
    assert_eq!(
        shown(&run, &fork_output)?,
        [at(2_000, 5_000)],
        "the fork resumes at the savepoint's offsets with its stream time"
    );
    Ok(())
}
