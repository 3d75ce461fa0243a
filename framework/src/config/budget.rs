//! How `memory.budget_mb` divides among the parts of an instance that grow with load:
//! RocksDB's block cache and write buffers, and the records the consumers fetch ahead.

/// Shares of the budget, in percent. The rest (a quarter) is left for what no setting
/// bounds: records in flight through the tasks, librdkafka's producer buffers and metadata,
/// the allocator's free lists and the program itself.
const BLOCK_CACHE_PERCENT: u64 = 35;
const WRITE_BUFFER_PERCENT: u64 = 20;
const FETCH_QUEUE_PERCENT: u64 = 20;

/// The smallest fetch queue of a consumer: librdkafka fetches up to a message's size
/// (`message.max.bytes`, 1 MB) whatever the queue's bound.
const MIN_QUEUE_KIB: u64 = 1_024;

/// A stream thread consumer's fetch queue without a budget. Wordcount and passthrough keep
/// their throughput with it and lose a third of their peak resident memory against
/// librdkafka's default (64 MiB); see docs/DECISIONS.md.
pub(crate) const DEFAULT_QUEUE_KIB: u64 = 2_048;

/// Resident bytes per byte of payload a consumer queue holds: librdkafka's bound counts
/// payload only, while each fetched record also keeps its message structure and pins the
/// fetch buffer it came in (about five times the payload for word-count's short lines).
const QUEUE_FOOTPRINT: u64 = 5;

/// What the budget gives each part, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Division {
    /// RocksDB's block cache, shared by every store.
    pub block_cache: u64,
    /// RocksDB's write buffers of every store together.
    pub write_buffers: u64,
    /// Records fetched and not yet processed, over every stream thread's consumer.
    pub fetch_queues: u64,
}

/// Divides `budget` bytes; a part set explicitly (`Some`) keeps its value and the others
/// their shares. Returns the problem when the explicit parts leave less than the fetch
/// queues' share and the unbounded rest.
pub(crate) fn divide(
    budget: u64,
    block_cache: Option<u64>,
    write_buffers: Option<u64>,
) -> Result<Division, String> {
    let share = |percent: u64| budget / 100 * percent;
    let division = Division {
        block_cache: block_cache.unwrap_or(share(BLOCK_CACHE_PERCENT)),
        write_buffers: write_buffers.unwrap_or(share(WRITE_BUFFER_PERCENT)),
        fetch_queues: share(FETCH_QUEUE_PERCENT),
    };
    let bounded = division.block_cache + division.write_buffers;
    if bounded > budget / 100 * 80 {
        return Err(format!(
            "`state.block_cache_mb` and `state.write_buffer_mb` ({} MiB together) take more than 80% of `memory.budget_mb` ({} MiB), leaving too little for the fetch queues and the rest",
            bounded >> 20,
            budget >> 20
        ));
    }
    Ok(division)
}

/// `queued.max.messages.kbytes` of each of `threads` consumers sharing `fetch_queues`
/// resident bytes. librdkafka compares it with the payload in the consumer's whole queue
/// (the partition queues are forwarded to it; a partition is not fetched while that queue
/// holds more), so the resident share is divided by the queue's footprint per payload byte.
pub(crate) fn queue_kib_per_consumer(fetch_queues: u64, threads: usize) -> u64 {
    let threads = u64::try_from(threads.max(1)).unwrap_or(u64::MAX);
    (fetch_queues / QUEUE_FOOTPRINT / 1024 / threads).max(MIN_QUEUE_KIB)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn the_budget_is_divided_by_shares_and_explicit_parts_win() {
        let d = divide(200 * MIB, None, None).unwrap();
        assert_eq!(d.block_cache, 70 * MIB);
        assert_eq!(d.write_buffers, 40 * MIB);
        assert_eq!(d.fetch_queues, 40 * MIB);
        let d = divide(200 * MIB, Some(16 * MIB), None).unwrap();
        assert_eq!(d.block_cache, 16 * MIB);
        assert_eq!(d.write_buffers, 40 * MIB);
        let err = divide(200 * MIB, Some(150 * MIB), Some(20 * MIB)).unwrap_err();
        assert!(
            err.contains("memory.budget_mb") && err.contains("170 MiB"),
            "{err}"
        );
    }

    fn load(vars: &[(&str, &str)]) -> Result<crate::config::EddyConfig, String> {
        crate::config::ConfigLoader::new()
            .environment_from(vars.iter().copied())
            .flag("application.id", "budget")
            .flag("kafka.bootstrap_servers", "127.0.0.1:9092")
            .load()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_loaded_configuration_sizes_its_parts_from_the_budget() {
        let plain = load(&[]).unwrap();
        assert_eq!(plain.memory.budget_bytes, None);
        assert_eq!(plain.memory.fetch_queue_bytes, None);
        assert_eq!(plain.state.block_cache_bytes, 32 << 20, "its own default");
        let budget = load(&[("EDDY__MEMORY__BUDGET_MB", "200")]).unwrap();
        assert_eq!(budget.memory.budget_bytes, Some(200 * MIB));
        assert_eq!(budget.state.block_cache_bytes, 70 << 20);
        assert_eq!(budget.state.write_buffer_bytes, 40 << 20);
        assert_eq!(budget.memory.fetch_queue_bytes, Some(40 * MIB));
        let explicit = load(&[
            ("EDDY__MEMORY__BUDGET_MB", "200"),
            ("EDDY__STATE__BLOCK_CACHE_MB", "16"),
        ])
        .unwrap();
        assert_eq!(explicit.state.block_cache_bytes, 16 << 20);
        let err = load(&[
            ("EDDY__MEMORY__BUDGET_MB", "100"),
            ("EDDY__STATE__BLOCK_CACHE_MB", "90"),
        ])
        .unwrap_err();
        assert!(err.contains("memory.budget_mb"), "{err}");
        let small = load(&[("EDDY__MEMORY__BUDGET_MB", "10")]).unwrap_err();
        assert!(small.contains("memory.budget_mb"), "{small}");
    }

    #[test]
    fn each_consumer_gets_its_part_of_the_queues_but_one_message_at_least() {
        assert_eq!(queue_kib_per_consumer(40 * MIB, 2), 4 * 1024);
        assert_eq!(queue_kib_per_consumer(4 * MIB, 8), MIN_QUEUE_KIB);
        assert_eq!(queue_kib_per_consumer(20 * MIB, 0), 4 * 1024);
    }
}
