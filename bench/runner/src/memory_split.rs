//! Where an Eddy instance's resident memory goes at its peak: its `eddy_memory_bytes` parts,
//! sampled from `/metrics` while a benchmark run processes, keeping the sample with the
//! largest resident set.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Serialize;

use eddy_integration_tests::ops::OpsClient;

/// How often the parts are read.
const INTERVAL: Duration = Duration::from_millis(200);

/// An instance's memory by part, in MiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MemorySplit {
    /// Resident set.
    pub resident: f64,
    /// RocksDB's block cache.
    pub rocksdb_block_cache: f64,
    /// RocksDB's write buffers.
    pub rocksdb_write_buffers: f64,
    /// Records the consumers fetched ahead of processing (librdkafka).
    pub kafka_fetch_queues: f64,
    /// The rest: Eddy's own allocations, librdkafka's other buffers, the allocator, the
    /// program.
    pub rest: f64,
}

impl MemorySplit {
    /// The split from `eddy_memory_bytes` samples (`part` label → bytes).
    pub fn from_parts(parts: &[(String, f64)]) -> Self {
        let mib = |name: &str| {
            parts
                .iter()
                .find(|(p, _)| p == name)
                .map_or(0.0, |(_, v)| v / (1024.0 * 1024.0))
        };
        MemorySplit {
            resident: mib("resident"),
            rocksdb_block_cache: mib("rocksdb_block_cache"),
            rocksdb_write_buffers: mib("rocksdb_write_buffers"),
            kafka_fetch_queues: mib("kafka_fetch_queues"),
            rest: mib("rest"),
        }
    }
}

/// Reads an instance's memory parts in the background until [`finish`](Self::finish).
#[derive(Debug)]
pub struct MemorySampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Option<MemorySplit>>,
}

impl MemorySampler {
    /// Starts sampling the instance of `application_id` whose state directory is `state_dir`
    /// (it writes its ops address there).
    pub fn start(state_dir: &Path, application_id: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (dir, app, flag) = (
            state_dir.to_path_buf(),
            application_id.to_owned(),
            Arc::clone(&stop),
        );
        let handle = std::thread::spawn(move || {
            let client = OpsClient::of(&dir, &app, Duration::from_secs(120)).ok()?;
            let mut peak: Option<MemorySplit> = None;
            while !flag.load(Ordering::Relaxed) {
                if let Ok(samples) = client.samples("eddy_memory_bytes") {
                    let parts: Vec<(String, f64)> = samples
                        .iter()
                        .filter_map(|s| Some((s.label("part")?.to_owned(), s.value)))
                        .collect();
                    let split = MemorySplit::from_parts(&parts);
                    if peak.is_none_or(|p| split.resident > p.resident) {
                        peak = Some(split);
                    }
                }
                eddy_testkit::pace(INTERVAL); // the sampling period; `finish` unparks it
            }
            peak
        });
        MemorySampler { stop, handle }
    }

    /// Stops sampling; the reading with the largest resident set, if any was taken.
    pub fn finish(self) -> Option<MemorySplit> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.thread().unpark();
        self.handle.join().ok().flatten()
    }
}

/// The report's table of Eddy's memory at peak, one row per workload and guarantee (the run
/// with the median resident set).
pub fn markdown(rows: &[(String, String, MemorySplit)]) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "\nEddy's resident memory at its peak sample, by part (MiB; `eddy_memory_bytes` read from `/metrics` every 200 ms while processing).\n\n| workload | guarantee | resident | RocksDB block cache | RocksDB write buffers | fetched ahead (librdkafka) | rest |\n|---|---|---|---|---|---|---|"
    );
    for (workload, guarantee, s) in rows {
        let _ = writeln!(
            out,
            "| {workload} | {guarantee} | {:.0} | {:.1} | {:.1} | {:.1} | {:.0} |",
            s.resident,
            s.rocksdb_block_cache,
            s.rocksdb_write_buffers,
            s.kafka_fetch_queues,
            s.rest
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parts_are_read_by_label_in_mib() {
        let parts = vec![
            ("resident".to_owned(), 100.0 * 1024.0 * 1024.0),
            ("kafka_fetch_queues".to_owned(), 5.0 * 1024.0 * 1024.0),
            ("rest".to_owned(), 95.0 * 1024.0 * 1024.0),
        ];
        let split = MemorySplit::from_parts(&parts);
        assert_eq!(split.resident, 100.0);
        assert_eq!(split.kafka_fetch_queues, 5.0);
        assert_eq!(split.rocksdb_block_cache, 0.0);
        let table = markdown(&[("wordcount".into(), "exactly_once".into(), split)]);
        assert!(
            table.contains("| wordcount | exactly_once | 100 | 0.0 | 0.0 | 5.0 | 95 |"),
            "{table}"
        );
    }
}
