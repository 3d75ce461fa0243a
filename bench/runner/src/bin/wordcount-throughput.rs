//! Measures one wordcount instance against the local broker: pre-loads input lines, starts the
//! instance, and prints how fast the committed output appears.
//!
//! `cargo run -p eddy-bench --bin wordcount-throughput -- [lines]`
//! (uses `EDDY_BOOTSTRAP_SERVERS`, or starts the local broker).

use std::time::{Duration, Instant};

use eddy_integration_tests::{expected_counts, generate_lines, WordcountRun};

fn main() -> anyhow::Result<()> {
    let lines: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);
    let run = WordcountRun::new("throughput", 6)?;
    let input = generate_lines(1, lines, 2_000);
    let words: u64 = expected_counts(input.iter().map(String::as_str))
        .values()
        .sum();
    run.produce_lines(&input)?;
    let mut tail = run.kafka.tail(&run.output)?;

    let started = Instant::now();
    let mut app = run.start("bench", &[("RUST_LOG", "warn")])?;
    tail.wait_for(1, Duration::from_secs(120))?;
    let first_output = started.elapsed();
    tail.wait_for(words, Duration::from_secs(1_200))?;
    let done = started.elapsed();
    app.terminate(Duration::from_secs(60))?;

    let steady = (done - first_output).as_secs_f64();
    println!("wordcount, 1 instance, 6 partitions, exactly-once, commit interval 100 ms");
    println!("input lines:          {lines}");
    println!("output records:       {words} (one per word occurrence)");
    println!(
        "first output after:   {:.2} s (start-up, group join, restore)",
        first_output.as_secs_f64()
    );
    println!("all output after:     {:.2} s", done.as_secs_f64());
    println!("lines/s (steady):     {:.0}", lines as f64 / steady);
    println!("words/s (steady):     {:.0}", words as f64 / steady);
    println!(
        "lines/s (end to end): {:.0}",
        lines as f64 / done.as_secs_f64()
    );
    Ok(())
}
