//! The benchmark report: medians with min and max per system and workload, ratios, written as
//! Markdown and JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::recovery::Recovery;
use super::recovery_phases::Phases;

/// One measured run.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// `eddy`, `kafka-streams` or `raw`.
    pub system: String,
    /// `passthrough`, `wordcount`, `windowed` or `join`.
    pub workload: String,
    /// `exactly_once` or `at_least_once`.
    pub guarantee: String,
    /// Input records.
    pub records: u64,
    /// Seconds from process start to the first output record.
    pub startup_seconds: f64,
    /// Seconds from the first to the last output record.
    pub processing_seconds: f64,
    /// Input records per second while processing.
    pub records_per_second: f64,
    /// Input records per CPU-second of the process (start-up included).
    pub records_per_cpu_second: f64,
    /// Peak resident memory.
    pub peak_rss_bytes: u64,
    /// Median end-to-end latency at the fixed input rate, in milliseconds.
    pub latency_p50_ms: f64,
    /// 99th-percentile end-to-end latency, in milliseconds.
    pub latency_p99_ms: f64,
    /// The highest latencies of the phase, one per second: (seconds into the phase, ms).
    pub latency_worst: Vec<(f64, i64)>,
    /// Eddy's memory by part at its peak sample (Eddy runs only).
    pub memory: Option<super::memory_split::MemorySplit>,
}

/// Per workload and guarantee, the memory split of the Eddy run with the median resident
/// set.
pub fn memory_rows(runs: &[Run]) -> Vec<(String, String, super::memory_split::MemorySplit)> {
    let mut groups: BTreeMap<(String, String), Vec<super::memory_split::MemorySplit>> =
        BTreeMap::new();
    for r in runs.iter().filter(|r| r.system == "eddy") {
        if let Some(m) = r.memory {
            groups
                .entry((r.workload.clone(), r.guarantee.clone()))
                .or_default()
                .push(m);
        }
    }
    groups
        .into_iter()
        .map(|((w, g), mut splits)| {
            splits.sort_by(|a, b| a.resident.total_cmp(&b.resident));
            let median = splits[splits.len() / 2];
            (w, g, median)
        })
        .collect()
}

/// Median, minimum and maximum of one figure over repeats.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    /// The median.
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

fn spread(mut values: Vec<f64>) -> Spread {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n == 0 {
        0.0
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    Spread {
        median,
        min: values.first().copied().unwrap_or(0.0),
        max: values.last().copied().unwrap_or(0.0),
    }
}

/// The figures of one system on one workload and guarantee.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The system.
    pub system: String,
    /// The workload.
    pub workload: String,
    /// The guarantee.
    pub guarantee: String,
    /// Repeats measured.
    pub runs: usize,
    /// Records per second.
    pub records_per_second: Spread,
    /// Records per CPU-second.
    pub records_per_cpu_second: Spread,
    /// Peak RSS in MiB.
    pub peak_rss_mib: Spread,
    /// Start-up seconds.
    pub startup_seconds: Spread,
    /// Median latency in milliseconds.
    pub latency_p50_ms: Spread,
    /// 99th-percentile latency in milliseconds.
    pub latency_p99_ms: Spread,
}

/// Summaries of `runs`, grouped by workload, guarantee and system.
pub fn summarize(runs: &[Run]) -> Vec<Summary> {
    let mut groups: BTreeMap<(String, String, String), Vec<&Run>> = BTreeMap::new();
    for r in runs {
        groups
            .entry((r.workload.clone(), r.guarantee.clone(), r.system.clone()))
            .or_default()
            .push(r);
    }
    #[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
    groups
        .into_iter()
        .map(|((workload, guarantee, system), rs)| Summary {
            runs: rs.len(),
            records_per_second: spread(rs.iter().map(|r| r.records_per_second).collect()),
            records_per_cpu_second: spread(rs.iter().map(|r| r.records_per_cpu_second).collect()),
            peak_rss_mib: spread(
                rs.iter()
                    .map(|r| r.peak_rss_bytes as f64 / (1024.0 * 1024.0))
                    .collect(),
            ),
            startup_seconds: spread(rs.iter().map(|r| r.startup_seconds).collect()),
            latency_p50_ms: spread(rs.iter().map(|r| r.latency_p50_ms).collect()),
            latency_p99_ms: spread(rs.iter().map(|r| r.latency_p99_ms).collect()),
            system,
            workload,
            guarantee,
        })
        .collect()
}

fn fmt(s: &Spread, decimals: usize) -> String {
    format!(
        "{:.d$} ({:.d$}–{:.d$})",
        s.median,
        s.min,
        s.max,
        d = decimals
    )
}

/// The Markdown report: one table of absolute figures, one of ratios.
pub fn markdown(summaries: &[Summary], header: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Eddy benchmark\n\n{header}\n");
    if summaries.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "Medians, with min–max over the repeats.\n\n| workload | guarantee | system | records/s | records/CPU-s | peak RSS MiB | start-up s | latency p50 ms | latency p99 ms |\n|---|---|---|---|---|---|---|---|---|"
    );
    for s in summaries {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.workload,
            s.guarantee,
            s.system,
            fmt(&s.records_per_second, 0),
            fmt(&s.records_per_cpu_second, 0),
            fmt(&s.peak_rss_mib, 0),
            fmt(&s.startup_seconds, 2),
            fmt(&s.latency_p50_ms, 0),
            fmt(&s.latency_p99_ms, 0),
        );
    }
    let _ = writeln!(
        out,
        "\nRatios of medians.\n\n| workload | guarantee | comparison | records/s | records/CPU-s | peak RSS |\n|---|---|---|---|---|---|"
    );
    let find = |w: &str, g: &str, sys: &str| {
        summaries
            .iter()
            .find(|s| s.workload == w && s.guarantee == g && s.system == sys)
    };
    for s in summaries.iter().filter(|s| s.system == "eddy") {
        for peer in ["kafka-streams", "raw"] {
            let Some(p) = find(&s.workload, &s.guarantee, peer) else {
                continue;
            };
            let ratio = |a: f64, b: f64| {
                if b > 0.0 {
                    format!("{:.2}", a / b)
                } else {
                    "–".to_owned()
                }
            };
            let _ = writeln!(
                out,
                "| {} | {} | eddy / {peer} | {} | {} | {} |",
                s.workload,
                s.guarantee,
                ratio(s.records_per_second.median, p.records_per_second.median),
                ratio(
                    s.records_per_cpu_second.median,
                    p.records_per_cpu_second.median
                ),
                ratio(s.peak_rss_mib.median, p.peak_rss_mib.median),
            );
        }
    }
    out
}

/// The recovery section of the report (empty when recovery was not measured).
pub fn recovery_markdown(recoveries: &[Recovery]) -> String {
    let mut out = String::new();
    if recoveries.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\n## Recovery after kill -9\n\nOne instance per system holds the latest value of every key (random values, exactly-once, restarted on its own state directory as the same static group member). Seconds from kill -9 to a new record on every partition processed and committed; medians with min–max.\n\n| system | keys | state MB | on disk MB | build s | recovery s |\n|---|---|---|---|---|---|"
    );
    for r in recoveries {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1} | {} |",
            r.system,
            r.keys,
            r.state_bytes / 1_000_000,
            r.state_dir_bytes / 1_000_000,
            r.build_seconds,
            fmt(&spread(r.recovery_seconds.clone()), 2),
        );
    }
    let median = |system: &str| {
        recoveries
            .iter()
            .find(|r| r.system == system)
            .map(|r| spread(r.recovery_seconds.clone()).median)
    };
    if let (Some(eddy), Some(peer)) = (median("eddy"), median("kafka-streams")) {
        if eddy > 0.0 {
            let _ = writeln!(
                out,
                "\nEddy recovers {:.1}× faster than Kafka Streams (ratio of medians).",
                peer / eddy
            );
        }
    }
    out.push_str(&phases_markdown(recoveries));
    out
}

/// Where Eddy's recoveries spent their time: each phase's end after the kill, median with
/// min–max over the cycles (from the restarted instance's log).
fn phases_markdown(recoveries: &[Recovery]) -> String {
    let mut out = String::new();
    for r in recoveries.iter().filter(|r| !r.phases.is_empty()) {
        let _ = writeln!(
            out,
            "\n{} recovery phases, seconds after kill -9 at which each ended (median, min–max):\n\n| phase | s |\n|---|---|",
            r.system
        );
        for (i, name) in Phases::NAMES.iter().enumerate() {
            let values: Vec<f64> = r.phases.iter().filter_map(|p| p.ends()[i]).collect();
            if !values.is_empty() {
                let _ = writeln!(out, "| {name} | {} |", fmt(&spread(values), 2));
            }
        }
        let _ = writeln!(
            out,
            "| output committed and visible | {} |",
            fmt(&spread(r.recovery_seconds.clone()), 2)
        );
    }
    out
}

/// The recovery runs with their spreads, for `report.json`.
pub fn recovery_json(recoveries: &[Recovery]) -> serde_json::Value {
    recoveries
        .iter()
        .map(|r| {
            serde_json::json!({
                "system": r.system,
                "keys": r.keys,
                "state_bytes": r.state_bytes,
                "state_dir_bytes": r.state_dir_bytes,
                "build_seconds": r.build_seconds,
                "recovery_seconds": r.recovery_seconds,
                "recovery": spread(r.recovery_seconds.clone()),
                "phases": r.phases,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_are_medians_with_their_range() {
        let s = spread(vec![3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert!((spread(vec![1.0, 4.0]).median - 2.5).abs() < 1e-9);
    }
}
