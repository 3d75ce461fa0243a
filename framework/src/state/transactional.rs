//! One store of a task: committed data in a backend plus an overlay of uncommitted writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use rocksdb::DB;

use super::StateError;

/// Uncommitted writes by key; `None` is a delete.
pub(crate) type Pending = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Key-value pairs in key order.
pub(crate) type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A key range `[from, to)` whose committed keys an uncommitted range delete removes.
pub(crate) type DroppedRange = (Vec<u8>, Vec<u8>);

/// Where committed data lives.
pub(crate) enum Backend {
    Memory(BTreeMap<Vec<u8>, Vec<u8>>),
    /// A column family (named like the store) of the task's RocksDB.
    Rocks {
        db: Arc<DB>,
        path: String,
    },
}

/// A store with read-your-writes over committed data. Writes stay in the overlay until the
/// Kafka transaction that carries their changelog records commits; then the task applies them
/// to the backend in one atomic batch.
pub(crate) struct TransactionalStore {
    name: String,
    backend: Backend,
    overlay: Pending,
    /// Uncommitted range deletes. Point writes made after a range delete stay in `overlay`
    /// (and win); those made before it were removed from `overlay` when it was recorded.
    dropped: Vec<DroppedRange>,
}

impl TransactionalStore {
    pub(crate) fn new(name: &str, backend: Backend) -> Self {
        TransactionalStore {
            name: name.to_owned(),
            backend,
            overlay: BTreeMap::new(),
            dropped: Vec::new(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    pub(crate) fn backend_mut(&mut self) -> &mut Backend {
        &mut self.backend
    }

    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        if let Some(pending) = self.overlay.get(key) {
            return Ok(pending.clone());
        }
        if self.is_dropped(key) {
            return Ok(None);
        }
        match &self.backend {
            Backend::Memory(map) => Ok(map.get(key).cloned()),
            Backend::Rocks { db, path } => {
                let cf = self.column_family(db, path)?;
                db.get_cf(cf, key).map_err(|source| StateError::RocksDb {
                    path: path.clone(),
                    source,
                })
            }
        }
    }

    fn column_family<'d>(
        &self,
        db: &'d DB,
        path: &str,
    ) -> Result<&'d rocksdb::ColumnFamily, StateError> {
        db.cf_handle(&self.name)
            .ok_or_else(|| StateError::MissingColumnFamily {
                path: path.to_owned(),
                what: format!("column family `{}`", self.name),
            })
    }

    pub(crate) fn put(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.overlay.insert(key, value);
    }

    /// Deletes every key in `[from, to)` when the transaction commits, as one range delete
    /// (RocksDB writes a single range tombstone; no key is visited). Not changelogged: only
    /// for data whose changelog ages out by itself (window segments past retention).
    pub(crate) fn delete_range(&mut self, from: Vec<u8>, to: Vec<u8>) {
        if from >= to {
            return;
        }
        let doomed: Vec<Vec<u8>> = self
            .overlay
            .range(from.clone()..to.clone())
            .map(|(k, _)| k.clone())
            .collect();
        for key in doomed {
            self.overlay.remove(&key);
        }
        self.dropped.push((from, to));
    }

    fn is_dropped(&self, key: &[u8]) -> bool {
        self.dropped
            .iter()
            .any(|(from, to)| from.as_slice() <= key && key < to.as_slice())
    }

    /// Committed entries merged with the overlay, in key order.
    pub(crate) fn entries(&self) -> Result<Entries, StateError> {
        self.range(&[], None)
    }

    /// Committed entries with keys in `[from, to)` (to the end when `to` is `None`) merged
    /// with the overlay, in key order.
    pub(crate) fn range(&self, from: &[u8], to: Option<&[u8]>) -> Result<Entries, StateError> {
        let within = |k: &[u8]| to.is_none_or(|to| k < to);
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        match &self.backend {
            Backend::Memory(map) => {
                for (k, v) in map.range(from.to_vec()..) {
                    if !within(k) {
                        break;
                    }
                    merged.insert(k.clone(), v.clone());
                }
            }
            Backend::Rocks { db, path } => {
                let cf = self.column_family(db, path)?;
                let mode = rocksdb::IteratorMode::From(from, rocksdb::Direction::Forward);
                for item in db.iterator_cf(cf, mode) {
                    let (k, v) = item.map_err(|source| StateError::RocksDb {
                        path: path.clone(),
                        source,
                    })?;
                    if !within(&k) {
                        break;
                    }
                    merged.insert(k.to_vec(), v.to_vec());
                }
            }
        }
        merged.retain(|k, _| !self.is_dropped(k));
        for (k, v) in self.overlay.range(from.to_vec()..) {
            if !within(k) {
                break;
            }
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().collect())
    }

    /// The uncommitted point writes, in key order (each key once, last write wins).
    pub(crate) fn pending(&self) -> &Pending {
        &self.overlay
    }

    /// Takes the uncommitted range deletes and point writes out, leaving the overlay empty.
    /// Apply the ranges first: the point writes were made after them.
    pub(crate) fn take_pending(&mut self) -> (Vec<DroppedRange>, Pending) {
        (
            std::mem::take(&mut self.dropped),
            std::mem::take(&mut self.overlay),
        )
    }

    /// Drops the uncommitted writes (the transaction aborted).
    pub(crate) fn discard_pending(&mut self) {
        self.overlay.clear();
        self.dropped.clear();
    }
}
