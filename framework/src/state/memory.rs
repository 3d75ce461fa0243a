//! The RocksDB memory an instance's stores share: one block cache and one budget for every
//! store's write buffers (memtables), so that memory grows with neither tasks nor stores.

use rocksdb::{BlockBasedOptions, Cache, Options, WriteBufferManager};

/// The largest write buffer of one column family before it is flushed.
const MAX_WRITE_BUFFER: usize = 16 << 20;

/// Shared RocksDB memory: every store opened with it draws on the same block cache and the
/// same write-buffer budget. Cloning shares it.
#[derive(Clone)]
pub struct RocksMemory {
    cache: Cache,
    write_buffers: WriteBufferManager,
    write_buffer_size: usize,
    block_cache_bytes: usize,
    write_buffer_bytes: usize,
}

impl std::fmt::Debug for RocksMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksMemory")
            .field("block_cache_bytes", &self.block_cache_bytes)
            .field("write_buffer_bytes", &self.write_buffer_bytes)
            .finish()
    }
}

impl RocksMemory {
    /// A block cache of `block_cache_bytes` and a write-buffer budget of `write_buffer_bytes`
    /// for all stores together. When the write buffers reach the budget, RocksDB flushes the
    /// largest of them; writers are never stalled.
    pub fn new(block_cache_bytes: usize, write_buffer_bytes: usize) -> Self {
        let write_buffer_bytes = write_buffer_bytes.max(1 << 20);
        RocksMemory {
            cache: Cache::new_lru_cache(block_cache_bytes),
            write_buffers: WriteBufferManager::new_write_buffer_manager(write_buffer_bytes, false),
            // Several memtables fit the budget, so one busy store does not flush the others.
            write_buffer_size: (write_buffer_bytes / 4).clamp(1 << 20, MAX_WRITE_BUFFER),
            block_cache_bytes,
            write_buffer_bytes,
        }
    }

    /// Bytes in use now: the block cache's, and the write buffers' of every store.
    pub(crate) fn usage(&self) -> (usize, usize) {
        (self.cache.get_usage(), self.write_buffers.get_usage())
    }

    /// Options for a database and each of its column families, drawing on this memory.
    pub(crate) fn options(&self) -> Options {
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&self.cache);
        let mut options = Options::default();
        options.set_block_based_table_factory(&table);
        options.set_write_buffer_manager(&self.write_buffers);
        options.set_write_buffer_size(self.write_buffer_size);
        options.set_max_write_buffer_number(2);
        options
    }
}

impl Default for RocksMemory {
    /// 8 MiB of block cache and 16 MiB of write buffers: for tests and tools.
    fn default() -> Self {
        RocksMemory::new(8 << 20, 16 << 20)
    }
}
