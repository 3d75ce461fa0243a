//! Stream time is committed task state: after kill -9 and a restart, a record older than
//! what the task saw before the crash finds the stream time it would have found without the
//! crash, so late/on-time decisions are the same either way.

use std::time::Duration;

use eddy_integration_tests::{AppProcess, WordcountRun};
use eddy_testkit::Isolation;

const WAIT: Duration = Duration::from_secs(120);

#[test]
fn stream_time_survives_kill_9_with_the_committed_offset() -> anyhow::Result<()> {
    let run = WordcountRun::new("stream-time", 1)?;
    let mut spec = run.spec("a", &[]);
    spec.binary = "stream-time".to_owned();
    let mut app = AppProcess::start("a", spec)?;
    // Event times an hour ago, so that no retention check on the output topic sees them as
    // expired.
    let base = eddy::record::wall_clock_ms() - 3_600_000;
    let produce = |times: &[i64]| {
        run.kafka.produce(
            &run.input,
            times
                .iter()
                .map(|t| (Some(b"k".to_vec()), (base + t).to_string().into_bytes())),
        )
    };
    let mut tail = run.kafka.tail(&run.output)?;
    produce(&[1_000, 5_000])?;
    tail.wait_for(2, WAIT)
        .map_err(|e| anyhow::anyhow!("{e}\n{}", app.log_tail(30)))?;

    app.kill9()?;
    app.restart()?;
    produce(&[2_000])?;
    tail.wait_for(3, WAIT)
        .map_err(|e| anyhow::anyhow!("{e}\n{}", app.log_tail(30)))?;
    app.terminate(Duration::from_secs(60))?;

    let shown: Vec<String> = run
        .kafka
        .read_all(&run.output, Isolation::ReadCommitted)?
        .iter()
        .map(|r| r.value_str().to_owned())
        .collect();
    let at = |event: i64, stream: i64| format!("{}@{}", base + event, base + stream);
    assert_eq!(
        shown,
        [at(1_000, 1_000), at(5_000, 5_000), at(2_000, 5_000)],
        "after the crash the late record must see the stream time committed before it"
    );
    Ok(())
}
