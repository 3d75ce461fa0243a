//! One store of a task: committed data in a backend plus an overlay of uncommitted writes.

use std::collections::BTreeMap;
use std::sync::Arc;

use rocksdb::DB;

use super::StateError;

/// Uncommitted writes by key; `None` is a delete.
pub(crate) type Pending = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Key-value pairs in key order.
pub(crate) type Entries = Vec<(Vec<u8>, Vec<u8>)>;

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
}

impl TransactionalStore {
    pub(crate) fn new(name: &str, backend: Backend) -> Self {
        TransactionalStore {
            name: name.to_owned(),
            backend,
            overlay: BTreeMap::new(),
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
        match &self.backend {
            Backend::Memory(map) => Ok(map.get(key).cloned()),
            Backend::Rocks { db, path } => {
                let cf = self.column_family(db, path)?;
                db.get_cf(cf, key).map_err(|e| StateError::RocksDb {
                    path: path.clone(),
                    message: e.to_string(),
                })
            }
        }
    }

    fn column_family<'d>(
        &self,
        db: &'d DB,
        path: &str,
    ) -> Result<&'d rocksdb::ColumnFamily, StateError> {
        db.cf_handle(&self.name).ok_or_else(|| StateError::RocksDb {
            path: path.to_owned(),
            message: format!("column family `{}` missing", self.name),
        })
    }

    pub(crate) fn put(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.overlay.insert(key, value);
    }

    /// Committed entries merged with the overlay, in key order.
    pub(crate) fn entries(&self) -> Result<Entries, StateError> {
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = match &self.backend {
            Backend::Memory(map) => map.clone(),
            Backend::Rocks { db, path } => {
                let cf = self.column_family(db, path)?;
                let mut out = BTreeMap::new();
                for item in db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
                    let (k, v) = item.map_err(|e| StateError::RocksDb {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                    out.insert(k.to_vec(), v.to_vec());
                }
                out
            }
        };
        for (k, v) in &self.overlay {
            match v {
                Some(v) => merged.insert(k.clone(), v.clone()),
                None => merged.remove(k),
            };
        }
        Ok(merged.into_iter().collect())
    }

    /// The uncommitted writes, in key order (each key once, last write wins).
    pub(crate) fn pending(&self) -> &Pending {
        &self.overlay
    }

    /// Takes the uncommitted writes out, leaving the overlay empty.
    pub(crate) fn take_pending(&mut self) -> Pending {
        std::mem::take(&mut self.overlay)
    }

    /// Drops the uncommitted writes (the transaction aborted).
    pub(crate) fn discard_pending(&mut self) {
        self.overlay.clear();
    }
}
