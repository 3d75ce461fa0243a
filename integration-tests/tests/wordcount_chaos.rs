//! Three wordcount instances under kill -9 chaos against the real broker: every word's counts
//! in the committed output are exactly 1, 2, ..., n.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use eddy_integration_tests::{expected_counts, generate_lines, WordcountRun};

const LINES: usize = 200_000;
const CHUNKS: usize = 10;
const INSTANCES: usize = 3;

#[test]
fn three_instances_under_kill_9_count_every_word_exactly_once() -> anyhow::Result<()> {
    let started = Instant::now();
    let run = WordcountRun::new("chaos", 6)?;
    let lines = generate_lines(42, LINES, 2_000);
    let expected = expected_counts(lines.iter().map(String::as_str));
    let total: u64 = expected.values().sum();
    let mut apps = (0..INSTANCES)
        .map(|i| run.start(&format!("i{i}"), &[]))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut tail = run.kafka.tail(&run.output)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut kills = 0;

    // Input arrives in chunks while a random instance is killed with SIGKILL and restarted
    // after every chunk, so kills land in the middle of processing and of transactions.
    for chunk in lines.chunks(LINES / CHUNKS) {
        run.produce_lines(chunk)?;
        // Let processing run for a while; the tail read doubles as the pause.
        tail.count(Duration::from_millis(rng.random_range(1_000..3_000)))?;
        let victim = rng.random_range(0..apps.len());
        apps[victim].kill9()?;
        kills += 1;
        apps[victim].restart()?;
    }
    let seen = run.finish_exactly(&mut apps, &expected)?;
    let committed = run
        .kafka
        .committed_offsets(&run.application_id, &run.input)?;
    let ends = run
        .kafka
        .end_offsets(&run.input, eddy_testkit::Isolation::ReadUncommitted)?;
    assert_eq!(
        committed,
        ends.iter().map(|&e| Some(e)).collect::<Vec<_>>(),
        "committed offsets cover the whole input"
    );
    println!(
        "chaos: {LINES} lines, {total} words, {seen} outputs, {INSTANCES} instances, {kills} kill -9s, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
