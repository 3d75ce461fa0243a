//! A session-windowed count with final-only emission, against the real broker: a fork from a
//! savepoint carries the open sessions and the operator's time (so a record late by the
//! savepoint's time is late in the fork too).

use std::time::Duration;

use eddy_integration_tests::{AppProcess, WordcountRun, WordcountSpec};
use eddy_testkit::Isolation;

/// Inactivity that ends a session; the app's grace is 500 ms.
const GAP_MS: &str = "1000";

/// `windowed-clicks` counting per session, writing to `output`.
fn sessions_spec(run: &WordcountRun, name: &str, output: &str) -> WordcountSpec {
    let mut spec = run.spec(name, &[("WINDOWED_CLICKS_SESSION_GAP_MS", GAP_MS)]);
    spec.binary = "windowed-clicks".to_owned();
    spec.output_topic = output.to_owned();
    spec
}

/// The `(start − base, end − base, count)` of every committed session of `topic`.
fn sessions_of(
    run: &WordcountRun,
    topic: &str,
    base: i64,
) -> anyhow::Result<Vec<(i64, i64, String)>> {
    run.kafka
        .read_all(topic, Isolation::ReadCommitted)?
        .iter()
        .map(|r| {
            let key = r.key.clone().unwrap_or_default();
            let times = key
                .len()
                .checked_sub(16)
                .and_then(|at| key.get(at..))
                .ok_or_else(|| anyhow::anyhow!("session key too short: {key:?}"))?;
            let start = i64::from_be_bytes(times[..8].try_into()?);
            let end = i64::from_be_bytes(times[8..].try_into()?);
            Ok((start - base, end - base, r.value_str()))
        })
        .collect()
}

#[test]
fn a_fork_from_a_savepoint_carries_open_sessions_and_the_operators_time() -> anyhow::Result<()> {
    let run = WordcountRun::new("sessions-sp", 1)?;
    run.kafka.create_topic(&format!("{}-late", run.output), 1)?;
    let target = eddy_integration_tests::SnapshotTarget::directory(&run);
    let mut original = AppProcess::start("a", sessions_spec(&run, "a", &run.output))?;
    let base = eddy::record::wall_clock_ms() - 3_600_000;
    let click = |times: &[i64]| {
        run.kafka.produce(
            &run.input,
            times
                .iter()
                .map(|at| (Some(b"u".to_vec()), (base + at).to_string().into_bytes())),
        )
    };
    // [100, 600] is final once the time passes 600 + gap + grace (at 2 400, the last click,
    // so every click is committed with it); [2 000, 2 400] stays open.
    click(&[100, 600, 2_000, 2_400])?;
    run.kafka
        .tail(&run.output)?
        .wait_for(1, Duration::from_secs(120))
        .map_err(|e| anyhow::anyhow!("{e}\n{}", original.log_tail(30)))?;
    let savepoint = eddy_integration_tests::create_savepoint(&run, &target)?;
    original.terminate(Duration::from_secs(60))?;
    assert_eq!(
        sessions_of(&run, &run.output, base)?,
        vec![(100, 600, "2".to_owned())]
    );

    let fork_output = eddy_testkit::unique_name("sessions-fork-out");
    let fork_late = format!("{fork_output}-late");
    run.kafka.create_topic(&fork_output, 1)?;
    run.kafka.create_topic(&fork_late, 1)?;
    let mut spec = sessions_spec(&run, "fork", &fork_output);
    spec.application_id = format!("{}-fork", run.application_id);
    spec.env
        .push(("EDDY__SNAPSHOT__FROM_SAVEPOINT".to_owned(), savepoint));
    let mut fork = AppProcess::start("fork", spec)?;
    // 1 500 is late by the savepoint's operator time (2 400 − grace) though it would extend
    // the open session; 2 900 extends it; 6 000 closes it.
    click(&[1_500, 2_900, 6_000])?;
    run.kafka
        .tail(&fork_output)?
        .wait_for(1, Duration::from_secs(120))
        .map_err(|e| anyhow::anyhow!("{e}\n{}", fork.log_tail(30)))?;
    run.kafka
        .tail(&fork_late)?
        .wait_for(1, Duration::from_secs(60))
        .map_err(|e| anyhow::anyhow!("{e}\n{}", fork.log_tail(30)))?;
    fork.terminate(Duration::from_secs(60))?;
    assert_eq!(
        sessions_of(&run, &fork_output, base)?,
        vec![(2_000, 2_900, "3".to_owned())],
        "the open session's two clicks came with the savepoint, and [100, 600] is not sent again"
    );
    let late: Vec<String> = run
        .kafka
        .read_all(&fork_late, Isolation::ReadCommitted)?
        .iter()
        .map(|r| r.value_str())
        .collect();
    assert_eq!(late, vec![(base + 1_500).to_string()]);
    Ok(())
}
