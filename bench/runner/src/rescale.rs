//! Rescaling: wordcount 1 → 2 → 4 → 2 instances under 1,000 lines/s with checkpoints, the
//! longest pause in its committed output per step, under the default (`auto`) and the classic
//! group protocol; every count is checked after.

use std::io::Write;

use eddy_integration_tests::rescale::{rescale_under_load, CHUNK, TICK};
use eddy_integration_tests::{borrowed, expected_counts, SnapshotTarget, WordcountRun};

/// The group protocols measured: the default, and the classic one it replaces where the
/// brokers allow.
const PROTOCOLS: [&str; 2] = ["auto", "classic"];

/// One rescale run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RescaleRun {
    /// `processing.group_protocol`.
    pub protocol: String,
    /// The protocol `auto` chose, from the instances' logs (`classic` when set so).
    pub chosen: String,
    /// Each part (steady, then each step) with its longest pause in seconds.
    pub pauses: Vec<(String, f64)>,
}

/// Runs the rescale under each protocol `repeats` times.
///
/// # Errors
/// Kafka or an instance fails, or a count is not exact.
pub fn run(repeats: usize, out: &mut dyn Write) -> anyhow::Result<Vec<RescaleRun>> {
    let mut runs = Vec::new();
    for repeat in 0..repeats {
        for protocol in PROTOCOLS {
            let run = WordcountRun::new(&format!("bench-rescale-{protocol}"), 6)?;
            let target = SnapshotTarget::directory(&run);
            let settings = target.settings(&[
                ("EDDY__SNAPSHOT__CHECKPOINT_INTERVAL_MS", "2000"),
                ("EDDY__PROCESSING__GROUP_PROTOCOL", protocol),
            ]);
            let mut rescaled = rescale_under_load(&run, &borrowed(&settings))?;
            let expected = expected_counts(rescaled.produced.iter().map(String::as_str));
            run.finish_exactly(&mut rescaled.apps, &expected)?;
            let chosen = if rescaled.auto_chose_consumer() {
                "consumer"
            } else {
                "classic"
            };
            writeln!(
                out,
                "rescale ({protocol} → {chosen}, repeat {}): {}",
                repeat + 1,
                rescaled
                    .pauses
                    .iter()
                    .map(|p| format!("{} {:.2} s", p.part, p.longest.as_secs_f64()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )?;
            runs.push(RescaleRun {
                protocol: protocol.to_owned(),
                chosen: chosen.to_owned(),
                pauses: rescaled
                    .pauses
                    .iter()
                    .map(|p| (p.part.clone(), p.longest.as_secs_f64()))
                    .collect(),
            });
        }
    }
    Ok(runs)
}

/// The report's rescale section: one row per run.
pub fn markdown(runs: &[RescaleRun]) -> String {
    let Some(first) = runs.first() else {
        return String::new();
    };
    let parts: Vec<&str> = first.pauses.iter().map(|(p, _)| p.as_str()).collect();
    let mut md = format!(
        "\n## Rescaling under load\n\nwordcount, 6 partitions, {CHUNK} lines every {} ms, checkpoints every 2 s; 1 → 2 → 4 → 2 instances 12 s apart; the longest pause in the committed output (sampled every 50 ms) of each part; every count checked exact after.\n\n| protocol (chosen) | {} |\n|---|{}\n",
        TICK.as_millis(),
        parts.join(" | "),
        "---|".repeat(parts.len())
    );
    for run in runs {
        let cells: Vec<String> = run
            .pauses
            .iter()
            .map(|(_, s)| format!("{s:.2} s"))
            .collect();
        md.push_str(&format!(
            "| {} ({}) | {} |\n",
            run.protocol,
            run.chosen,
            cells.join(" | ")
        ));
    }
    md
}
