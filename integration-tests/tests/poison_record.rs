//! A record whose value is not UTF-8 follows the configured deserialization handler: `fail`
//! stops the app naming topic, partition and offset; `skip` and `dead_letter` go on, and
//! `dead_letter` keeps the record with its origin.

use std::time::Duration;

use eddy_integration_tests::{
    eventually, expected_counts, generate_lines, with_log_tails, WordcountRun,
};
use eddy_testkit::Isolation;

const POISON: &[u8] = b"caf\xc3 not utf-8";

const WAIT: Duration = Duration::from_secs(120);

/// Input: good lines, one poison record, more good lines; returns the good lines.
fn feed(run: &WordcountRun) -> anyhow::Result<Vec<String>> {
    let lines = generate_lines(3, 400, 50);
    run.produce_lines(&lines[..200])?;
    run.kafka.produce(&run.input, [(None, POISON.to_vec())])?;
    run.produce_lines(&lines[200..])?;
    Ok(lines)
}

/// Where the poison record landed: (partition, offset).
fn poison_position(run: &WordcountRun) -> anyhow::Result<(i32, i64)> {
    let input = run.kafka.read_all(&run.input, Isolation::ReadCommitted)?;
    let poison = input
        .iter()
        .find(|r| r.value.as_deref() == Some(POISON))
        .ok_or_else(|| anyhow::anyhow!("poison record not found in the input"))?;
    Ok((poison.partition, poison.offset))
}

#[test]
fn fail_stops_the_app_and_names_the_record() -> anyhow::Result<()> {
    let run = WordcountRun::new("poison-fail", 1)?;
    feed(&run)?;
    let (partition, offset) = poison_position(&run)?;
    let mut app = run.start("a", &[])?;
    let status = app.wait_exit(Duration::from_secs(120))?;
    assert!(!status.success(), "the app must stop on the poison record");
    let log = app.log_text();
    let named = format!(
        "cannot deserialize the value of the record at {} [{partition}] offset {offset}",
        run.input
    );
    assert!(
        log.contains(&named),
        "expected `{named}` in:\n{}",
        app.log_tail(20)
    );
    // Nothing past the poison record committed: its offset is where the group stands.
    let committed = run
        .kafka
        .committed_offsets(&run.application_id, &run.input)?;
    assert!(
        committed[0].is_none_or(|c| c <= offset),
        "committed {committed:?} past the poison record at {offset}"
    );
    Ok(())
}

#[test]
fn skip_goes_on_and_counts_every_good_word() -> anyhow::Result<()> {
    let run = WordcountRun::new("poison-skip", 1)?;
    let lines = feed(&run)?;
    let expected = expected_counts(lines.iter().map(String::as_str));
    let mut apps = [run.start("a", &[("EDDY__ERRORS__DESERIALIZATION", "skip")])?];
    // The skip is counted in /metrics, read while the instance runs.
    let ops = apps[0].ops()?;
    eventually("the poison record counted as skipped", WAIT, || {
        Ok(ops.metric("eddy_records_skipped_total", &[])? >= 1.0)
    })
    .map_err(|e| with_log_tails(&apps, e))?;
    run.finish_exactly(&mut apps, &expected)?;
    let [app] = apps;
    // Which record was skipped only the log says (the counter has no position): the skip's
    // log line is what is under test here.
    let (partition, offset) = poison_position(&run)?;
    let log = app.log_text();
    assert!(
        log.contains("skipping a record that cannot be decoded")
            && log.contains(&format!("[{partition}] offset {offset}")),
        "the skip is logged with the record's position:\n{}",
        app.log_tail(20)
    );
    Ok(())
}

#[test]
fn dead_letter_keeps_the_record_with_its_origin() -> anyhow::Result<()> {
    let run = WordcountRun::new("poison-dlq", 1)?;
    let lines = feed(&run)?;
    let expected = expected_counts(lines.iter().map(String::as_str));
    let dlq = format!("{}-dead-letters", run.application_id);
    let mut apps = [run.start(
        "a",
        &[
            ("EDDY__ERRORS__DESERIALIZATION", "dead_letter"),
            ("EDDY__ERRORS__DEAD_LETTER_TOPIC", &dlq),
        ],
    )?];
    run.finish_exactly(&mut apps, &expected)?;

    let (partition, offset) = poison_position(&run)?;
    let letters = run.kafka.read_all(&dlq, Isolation::ReadCommitted)?;
    assert_eq!(letters.len(), 1, "exactly the poison record: {letters:?}");
    assert_eq!(letters[0].value.as_deref(), Some(POISON));
    let header = |name: &str| {
        letters[0]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    assert_eq!(header("eddy.topic"), Some(run.input.clone()));
    assert_eq!(header("eddy.partition"), Some(partition.to_string()));
    assert_eq!(header("eddy.offset"), Some(offset.to_string()));
    assert!(header("eddy.error").is_some_and(|e| e.contains("cannot deserialize the value")));
    Ok(())
}
