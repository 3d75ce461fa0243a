//! `make bench`: Eddy against Kafka Streams and a raw librdkafka loop; prints the report and
//! writes `target/eddy-bench/report.md` and `report.json`.
//!
//! `eddy-bench [--records N] [--repeats R] [--partitions P] [--out DIR] [--rate LINES/S]
//! [--latency-seconds S] [--state-mb MB] [--restore-mb MB] [--only
//! throughput|recovery|sinks|restore|rescale] [--systems LIST] [--workloads LIST]` (defaults
//! 1,000,000, 3, 6, `target/eddy-bench`, 1,000, 10, 1,000, 0 (no one-store restore; 10,000
//! with `--only restore`), all, `eddy,kafka-streams,raw`, `passthrough,wordcount,windowed,join`). Uses
//! `EDDY_BOOTSTRAP_SERVERS`, or starts the local broker; the sinks measurement uses
//! `EDDY_POSTGRES_URL`, or starts the local PostgreSQL. Build the Kafka Streams side first:
//! `mvn -f bench/kafka-streams/pom.xml package`.

use eddy_bench::{self as bench, report, Options};

/// The comma-separated `value`, each checked against `known`.
fn list(value: &str, known: &[&str]) -> anyhow::Result<Vec<String>> {
    value
        .split(',')
        .map(|v| {
            if known.contains(&v) {
                Ok(v.to_owned())
            } else {
                Err(anyhow::anyhow!("`{v}` is not one of {known:?}"))
            }
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let mut options = Options {
        records: 1_000_000,
        partitions: 6,
        repeats: 3,
        kafka_streams: eddy_testkit::repository_root().join("bench/kafka-streams/target"),
        out_dir: eddy_testkit::repository_root().join("target/eddy-bench"),
        rate: 1_000,
        latency_duration: std::time::Duration::from_secs(10),
        state_bytes: 1_000_000_000,
        restore_bytes: 0,
        value_bytes: 1_000,
        throughput: true,
        sinks: true,
        rescale: true,
        systems: bench::SYSTEMS.map(str::to_owned).to_vec(),
        workloads: bench::WORKLOADS.map(str::to_owned).to_vec(),
    };
    let mut restore_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))?;
        match flag.as_str() {
            "--records" => options.records = value.parse()?,
            "--repeats" => options.repeats = value.parse()?,
            "--partitions" => options.partitions = value.parse()?,
            "--out" => options.out_dir = value.into(),
            "--rate" => options.rate = value.parse()?,
            "--latency-seconds" => {
                options.latency_duration = std::time::Duration::from_secs(value.parse()?);
            }
            "--state-mb" => options.state_bytes = value.parse::<u64>()? * 1_000_000,
            "--restore-mb" => options.restore_bytes = value.parse::<u64>()? * 1_000_000,
            "--systems" => options.systems = list(&value, &bench::SYSTEMS)?,
            "--workloads" => options.workloads = list(&value, &bench::WORKLOADS)?,
            "--only" => match value.as_str() {
                "throughput" | "recovery" | "sinks" | "restore" | "rescale" => {
                    options.throughput = value == "throughput";
                    options.state_bytes = if value == "recovery" {
                        options.state_bytes
                    } else {
                        0
                    };
                    options.sinks = value == "sinks";
                    options.rescale = value == "rescale";
                    restore_only = value == "restore";
                }
                _ => anyhow::bail!(
                    "--only takes `throughput`, `recovery`, `sinks`, `restore` or `rescale`, not `{value}`"
                ),
            },
            _ => anyhow::bail!(
                "unknown flag {flag} (known: --records, --repeats, --partitions, --out, --rate, --latency-seconds, --state-mb, --restore-mb, --only, --systems, --workloads)"
            ),
        }
    }
    if restore_only && options.restore_bytes == 0 {
        options.restore_bytes = 10_000_000_000;
    }
    let mut out = std::io::stdout();
    let runs = bench::run(&options, &mut out)?;
    let recoveries = if options.state_bytes > 0 {
        bench::recovery::run(&options, eddy_testkit::Kafka::shared()?, &mut out)?
    } else {
        Vec::new()
    };
    let restore = if options.restore_bytes > 0 {
        Some(bench::restore::run(options.restore_bytes, false, &mut out)?)
    } else {
        None
    };
    let sinks = if options.sinks {
        bench::sinks::run(&options, &mut out)?
    } else {
        Vec::new()
    };
    let rescales = if options.rescale {
        bench::rescale::run(options.repeats.min(2), &mut out)?
    } else {
        Vec::new()
    };
    let summaries = report::summarize(&runs);
    let header = format!(
        "{} input lines, {} partitions, commit interval 100 ms, {} repeat(s), one process per system, on this machine ({} cores). Latency: {} lines/s for {} s into an empty topic, output seen by a read_committed consumer.",
        options.records,
        options.partitions,
        options.repeats,
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        options.rate,
        options.latency_duration.as_secs()
    );
    let mut markdown = report::markdown(&summaries, &header);
    markdown.push_str(&bench::memory_split::markdown(&report::memory_rows(&runs)));
    markdown.push_str(&report::recovery_markdown(&recoveries));
    markdown.push_str(&bench::restore::markdown(restore.as_ref()));
    markdown.push_str(&bench::sinks::markdown(&sinks));
    markdown.push_str(&bench::rescale::markdown(&rescales));
    println!("\n{markdown}");
    std::fs::write(options.out_dir.join("report.md"), &markdown)?;
    std::fs::write(
        options.out_dir.join("report.json"),
        serde_json::to_string_pretty(
            &serde_json::json!({"summaries": summaries, "runs": runs, "recovery": report::recovery_json(&recoveries), "restore": restore, "sinks": sinks, "rescale": rescales}),
        )?,
    )?;
    println!("written to {}", options.out_dir.display());
    Ok(())
}
