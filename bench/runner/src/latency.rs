//! End-to-end latency at a fixed input rate: input records carry their creation time, and the
//! latency of an output record is when a read_committed consumer sees it minus that time
//! (every workload keeps the input record's timestamp on its outputs).

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::DefaultProducerContext;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};

use eddy::record::wall_clock_ms;

use eddy_integration_tests::generate_lines;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Output records measured.
    pub samples: usize,
    /// The highest latencies, one per second of the phase (at most [`WORST`]): when in the
    /// phase each was seen (seconds from the end of the warm-up) and its latency in
    /// milliseconds. A p99
    /// set by one stall shows here as one bad second, a steady tail as many.
    pub worst: Vec<(f64, i64)>,
}

/// How many of the worst seconds [`Latency::worst`] keeps.
pub const WORST: usize = 3;

/// [`Latency::worst`] as `"480 ms at 12.3 s, ..."`, for the report line.
pub fn describe_worst(worst: &[(f64, i64)]) -> String {
    let parts: Vec<String> = worst
        .iter()
        .map(|(at, ms)| format!("{ms} ms at {at:.1} s"))
        .collect();
    parts.join(", ")
}

/// What the latency phase feeds and how it counts.
#[derive(Debug, Clone, Copy)]
pub struct Feed {
    /// Input lines per second.
    pub rate: u32,
    /// How long input is sent.
    pub duration: Duration,
    /// Outputs each line gives (to stop waiting for stragglers once all came).
    pub outputs_per_line: fn(&str) -> usize,
    /// The key of the n-th line, when lines are keyed.
    pub key_of: Option<fn(usize) -> String>,
    /// The time an output's latency runs from, given its timestamp (a windowed result's:
    /// the end of its window).
    pub since: fn(i64) -> i64,
}

/// How long input is fed at the phase's rate before latencies count: the first seconds of a
/// freshly started app (its first transaction on each partition, each task's first fetch)
/// measure its start-up, which the start-up figure covers, not its steady latency.
pub const WARM_UP: Duration = Duration::from_secs(3);

/// Produces `feed.rate` lines per second to `input` for [`WARM_UP`] plus `feed.duration` (in
/// steps of 10 ms), while reading `output` from `partitions` partitions, and returns the
/// latency of the outputs of the lines sent after the warm-up, waiting up to 30 s after the
/// last input for stragglers.
///
/// # Errors
/// A client cannot be created or a record cannot be produced.
pub fn measure(
    kafka: &eddy_testkit::Kafka,
    input: &str,
    output: &str,
    partitions: i32,
    feed: &Feed,
) -> anyhow::Result<Latency> {
    let producer: ThreadedProducer<DefaultProducerContext> = kafka
        .config()
        .set("linger.ms", "0")
        .set("enable.idempotence", "true")
        .create()?;
    let consumer: BaseConsumer = kafka
        .config()
        .set("group.id", format!("{output}-latency"))
        // Committed output shows at once, not after a parked fetch's timeout.
        .set("fetch.wait.max.ms", "10")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .create()?;
    // Explicit current ends: "end" would resolve at the first fetch and could skip the first
    // outputs of the measurement.
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (_, end) = consumer.fetch_watermarks(output, p, Duration::from_secs(10))?;
        tpl.add_partition_offset(output, p, Offset::Offset(end))?;
    }
    consumer.assign(&tpl)?;
    let lines = generate_lines(99, 10_000, 1_000);
    let step = Duration::from_millis(10);
    let Feed {
        rate,
        duration,
        outputs_per_line,
        key_of,
        since,
    } = *feed;
    let per_step = f64::from(rate) * step.as_secs_f64();
    // Outputs of lines stamped before this are the warm-up's.
    let measured_from = wall_clock_ms() + i64::try_from(WARM_UP.as_millis()).unwrap_or(0);
    // (when seen, latency in ms) per output.
    let mut seen: Vec<(Duration, i64)> = Vec::new();
    let started = Instant::now();
    // An output's arrival, unless it is the warm-up's.
    let arrival = |message: &rdkafka::message::BorrowedMessage<'_>| {
        let ts = message.timestamp().to_millis()?;
        (ts >= measured_from).then(|| {
            (
                started.elapsed().saturating_sub(WARM_UP),
                wall_clock_ms() - since(ts),
            )
        })
    };
    let mut sent = 0_usize;
    let mut expected = 0_usize;
    let mut next = started;
    while started.elapsed() < WARM_UP + duration {
        // Pace the input: send what is due, then read outputs until the next step.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let due = ((started.elapsed().as_secs_f64() / step.as_secs_f64()) * per_step) as usize;
        while sent < due {
            let line = &lines[sent % lines.len()];
            let key = key_of.map(|f| f(sent));
            let now = wall_clock_ms();
            let mut record = BaseRecord::<str, str>::to(input)
                .payload(line.as_str())
                .timestamp(now);
            if let Some(key) = &key {
                record = record.key(key.as_str());
            }
            producer.send(record).map_err(|(e, _)| e)?;
            sent += 1;
            if now >= measured_from {
                expected += outputs_per_line(line);
            }
        }
        next += step;
        while Instant::now() < next {
            if let Some(message) = consumer.poll(next.saturating_duration_since(Instant::now())) {
                seen.extend(arrival(&message?));
            }
        }
    }
    producer.flush(Duration::from_secs(30))?;
    let drain = Instant::now() + Duration::from_secs(30);
    while seen.len() < expected && Instant::now() < drain {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            seen.extend(arrival(&message?));
        }
    }
    let worst = worst_seconds(&seen);
    let mut latencies: Vec<i64> = seen.iter().map(|&(_, l)| l).collect();
    latencies.sort_unstable();
    let at = |q: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let i = ((latencies.len() - 1) as f64 * q).round() as usize;
        #[allow(clippy::cast_precision_loss)]
        let v = latencies[i] as f64;
        v
    };
    Ok(Latency {
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        samples: latencies.len(),
        worst,
    })
}

/// The [`WORST`] highest latencies of `seen` from different seconds of the phase, highest
/// first, each with the time it was seen.
fn worst_seconds(seen: &[(Duration, i64)]) -> Vec<(f64, i64)> {
    let mut per_second: std::collections::BTreeMap<u64, (Duration, i64)> =
        std::collections::BTreeMap::new();
    for &(at, latency) in seen {
        let entry = per_second.entry(at.as_secs()).or_insert((at, latency));
        if latency > entry.1 {
            *entry = (at, latency);
        }
    }
    let mut worst: Vec<(f64, i64)> = per_second
        .into_values()
        .map(|(at, latency)| (at.as_secs_f64(), latency))
        .collect();
    worst.sort_by_key(|w| std::cmp::Reverse(w.1));
    worst.truncate(WORST);
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_seconds_keep_one_latency_per_second_highest_first() {
        let ms = Duration::from_millis;
        let seen = [
            (ms(100), 10),
            (ms(900), 400),
            (ms(1_200), 20),
            (ms(2_500), 30),
            (ms(2_600), 35),
            (ms(3_100), 5),
        ];
        let worst = worst_seconds(&seen);
        assert_eq!(worst, vec![(0.9, 400), (2.6, 35), (1.2, 20)]);
        assert_eq!(
            describe_worst(&worst),
            "400 ms at 0.9 s, 35 ms at 2.6 s, 20 ms at 1.2 s"
        );
    }
}
