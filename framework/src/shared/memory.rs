//! What the instance's memory holds, as it reports it: its resident set, RocksDB's block cache
//! and write buffers, and the records librdkafka has fetched ahead of processing.

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use crate::state::RocksMemory;

/// The instance's memory at one moment, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryReading {
    /// Resident set of the process (`VmRSS`; 0 where `/proc` is not available).
    pub resident: u64,
    /// Peak resident set since the process started (`VmHWM`).
    pub resident_peak: u64,
    /// RocksDB's block cache, shared by every store.
    pub rocksdb_block_cache: u64,
    /// RocksDB's write buffers (memtables) of every store.
    pub rocksdb_write_buffers: u64,
    /// Records the stream threads' consumers fetched and have not handed over yet.
    pub kafka_fetch_queues: u64,
}

impl MemoryReading {
    /// What the parts named here do not account for: Eddy's own allocations (records in
    /// flight, buffers, task graphs), librdkafka's other buffers, the allocator's free lists
    /// and the program itself.
    pub fn rest(&self) -> u64 {
        self.resident.saturating_sub(
            self.rocksdb_block_cache + self.rocksdb_write_buffers + self.kafka_fetch_queues,
        )
    }
}

/// The sources of a [`MemoryReading`] a running instance registers.
#[derive(Debug, Default)]
pub(crate) struct MemoryParts {
    rocks: OnceLock<RocksMemory>,
    /// Bytes queued per consumer (its client name), from its latest statistics.
    fetch_queues: Mutex<BTreeMap<String, u64>>,
}

impl MemoryParts {
    /// Registers the RocksDB memory every store draws on.
    pub(crate) fn set_rocks(&self, rocks: RocksMemory) {
        let _ = self.rocks.set(rocks);
    }

    /// Notes how many bytes consumer `client` holds fetched and not yet handed over.
    pub(crate) fn set_fetch_queue(&self, client: &str, bytes: u64) {
        if let Ok(mut queues) = self.fetch_queues.lock() {
            queues.insert(client.to_owned(), bytes);
        }
    }

    /// Forgets consumer `client` (closed).
    pub(crate) fn drop_fetch_queue(&self, client: &str) {
        if let Ok(mut queues) = self.fetch_queues.lock() {
            queues.remove(client);
        }
    }

    /// Reads every part now.
    pub(crate) fn read(&self) -> MemoryReading {
        let (resident, resident_peak) = resident();
        let (block_cache, write_buffers) = self.rocks.get().map_or((0, 0), RocksMemory::usage);
        let kafka_fetch_queues = self
            .fetch_queues
            .lock()
            .map(|q| q.values().sum())
            .unwrap_or(0);
        MemoryReading {
            resident,
            resident_peak,
            rocksdb_block_cache: u64::try_from(block_cache).unwrap_or(u64::MAX),
            rocksdb_write_buffers: u64::try_from(write_buffers).unwrap_or(u64::MAX),
            kafka_fetch_queues,
        }
    }
}

/// The process's resident set and its peak, in bytes, from `/proc/self/status` (zeros where
/// it cannot be read).
fn resident() -> (u64, u64) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (0, 0);
    };
    (kib(&status, "VmRSS:") * 1024, kib(&status, "VmHWM:") * 1024)
}

/// The kB value of line `field` in a `/proc/*/status` text (0 when absent).
fn kib(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_fields_are_read_in_kib() {
        let status = "Name:\teddy\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n";
        assert_eq!(kib(status, "VmRSS:"), 1024);
        assert_eq!(kib(status, "VmHWM:"), 2048);
        assert_eq!(kib(status, "VmSwap:"), 0);
    }

    #[test]
    fn a_reading_sums_the_parts_and_leaves_the_rest() {
        let parts = MemoryParts::default();
        parts.set_fetch_queue("a", 3 << 20);
        parts.set_fetch_queue("b", 1 << 20);
        parts.set_fetch_queue("a", 2 << 20);
        let reading = parts.read();
        assert_eq!(
            reading.kafka_fetch_queues,
            3 << 20,
            "the latest per consumer"
        );
        parts.drop_fetch_queue("b");
        assert_eq!(parts.read().kafka_fetch_queues, 2 << 20);
        if cfg!(target_os = "linux") {
            assert!(reading.resident > 0 && reading.resident_peak >= reading.resident);
        }
        let split = MemoryReading {
            resident: 100,
            rocksdb_block_cache: 30,
            rocksdb_write_buffers: 20,
            kafka_fetch_queues: 10,
            ..MemoryReading::default()
        };
        assert_eq!(split.rest(), 40);
    }
}
