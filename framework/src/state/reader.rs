//! Read-only access to a task's committed RocksDB stores from other threads (queries, metrics).

use std::sync::{Arc, Weak};

use rocksdb::DB;

use super::StateError;

/// RocksDB properties that together say how much memory a store holds: memtables, index and
/// filter blocks of open table readers, and cached blocks.
const MEMORY_PROPERTIES: [&str; 3] = [
    "rocksdb.cur-size-all-mem-tables",
    "rocksdb.estimate-table-readers-mem",
    "rocksdb.block-cache-usage",
];

/// A read-only handle on one store of a task. It does not keep the database open: once the
/// task closes, reads answer [`StateError::Closed`].
#[derive(Debug, Clone)]
pub struct StoreReader {
    db: Weak<DB>,
    store: String,
}

impl StoreReader {
    pub(crate) fn new(db: &Arc<DB>, store: &str) -> Self {
        StoreReader {
            db: Arc::downgrade(db),
            store: store.to_owned(),
        }
    }

    /// The store's name.
    pub fn store(&self) -> &str {
        &self.store
    }

    fn db(&self) -> Result<Arc<DB>, StateError> {
        self.db
            .upgrade()
            .ok_or_else(|| StateError::Closed(self.store.clone()))
    }

    /// The committed value of `key` (uncommitted writes of an open transaction are never
    /// visible: they reach RocksDB only once their transaction committed).
    ///
    /// # Errors
    /// The task closed, or RocksDB failed.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        let db = self.db()?;
        let cf = db
            .cf_handle(&self.store)
            .ok_or_else(|| StateError::Unknown(self.store.clone()))?;
        db.get_cf(cf, key).map_err(|e| StateError::RocksDb {
            path: db.path().display().to_string(),
            source: e,
        })
    }

    /// The committed windows of a window store for the encoded key `key` whose starts lie
    /// in `[from, to]`: `(start, value bytes)` in start order.
    ///
    /// # Errors
    /// The task closed, or RocksDB failed.
    pub fn windows(
        &self,
        key: &[u8],
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Vec<u8>)>, StateError> {
        let db = self.db()?;
        let cf = db
            .cf_handle(&self.store)
            .ok_or_else(|| StateError::Unknown(self.store.clone()))?;
        let start = super::window::scan_from(from);
        let iter = db.iterator_cf(
            cf,
            rocksdb::IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        super::window::scan_key(iter, key, to).map_err(|e| StateError::RocksDb {
            path: db.path().display().to_string(),
            source: e,
        })
    }

    /// The committed versions of a versioned store's encoded key `key`: `(valid from, value
    /// bytes or None for a deletion)`, oldest first.
    ///
    /// # Errors
    /// The task closed, or RocksDB failed.
    pub fn versions(&self, key: &[u8]) -> Result<Vec<super::versioned::RawVersion>, StateError> {
        let db = self.db()?;
        let cf = db
            .cf_handle(&self.store)
            .ok_or_else(|| StateError::Unknown(self.store.clone()))?;
        let failed = |e: rocksdb::Error| StateError::RocksDb {
            path: db.path().display().to_string(),
            source: e,
        };
        super::versioned::versions_of(
            key,
            |latest| db.get_cf(cf, latest),
            |from| {
                db.iterator_cf(
                    cf,
                    rocksdb::IteratorMode::From(from, rocksdb::Direction::Forward),
                )
                .map(|entry| entry.map(|(k, v)| (k.to_vec(), v.to_vec())))
                .take_while(|entry| {
                    entry.as_ref().map_or(true, |(k, _)| {
                        k.first() == from.first() && k.starts_with(from)
                    })
                })
                .collect()
            },
        )
        .map_err(failed)
    }

    /// The committed sessions of a session store for the encoded key `key`:
    /// `(start, end, value bytes)` in end order (a scan of the store).
    ///
    /// # Errors
    /// The task closed, or RocksDB failed.
    pub fn sessions(&self, key: &[u8]) -> Result<Vec<(i64, i64, Vec<u8>)>, StateError> {
        let db = self.db()?;
        let cf = db
            .cf_handle(&self.store)
            .ok_or_else(|| StateError::Unknown(self.store.clone()))?;
        let iter = db.iterator_cf(cf, rocksdb::IteratorMode::Start);
        super::session::scan_key(iter, key).map_err(|e| StateError::RocksDb {
            path: db.path().display().to_string(),
            source: e,
        })
    }

    /// Bytes of memory the store holds (memtables, table readers, block cache); 0 once closed.
    pub fn memory_bytes(&self) -> u64 {
        let Ok(db) = self.db() else { return 0 };
        let Some(cf) = db.cf_handle(&self.store) else {
            return 0;
        };
        MEMORY_PROPERTIES
            .iter()
            .filter_map(|p| db.property_int_value_cf(cf, *p).ok().flatten())
            .sum()
    }
}
