//! The stores of one task: opened together, committed together in one atomic RocksDB batch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, WriteBatch, DB};

use super::transactional::Backend;
use super::{
    KeyValueStore, RocksMemory, SessionStore, StateError, StoreBuilder, StoreKind,
    TransactionalStore, VersionedStore, WindowLayout, WindowRetention, WindowStore,
};
use crate::serde::Serde;

/// Column family holding the changelog position each store's data corresponds to.
const META_CF: &str = "eddy-meta";

fn position_key(store: &str) -> Vec<u8> {
    format!("changelog-position/{store}").into_bytes()
}

fn synced_key(store: &str) -> Vec<u8> {
    format!("synced-at/{store}").into_bytes()
}

/// Meta key of the state timeline (the savepoint restore) the data belongs to.
const EPOCH_KEY: &[u8] = b"epoch";

/// A changelog record to send: `(topic, key, value)`.
pub(crate) type ChangelogEntry<'a> = (&'a str, &'a [u8], Option<&'a [u8]>);

/// One store of a task with its definition and changelog topic.
pub(crate) struct StoreSlot {
    pub store: TransactionalStore,
    pub def: StoreBuilder,
    pub changelog_topic: Option<String>,
}

/// All stores of one task.
pub(crate) struct TaskStores {
    db: Option<Arc<DB>>,
    path: Option<PathBuf>,
    slots: BTreeMap<String, StoreSlot>,
}

impl TaskStores {
    /// Opens (or creates) the stores of a task. RocksDB stores share one database in `dir`
    /// with a column family per store, drawing on `memory`.
    pub(crate) fn open(
        dir: Option<&Path>,
        defs: &[StoreBuilder],
        changelog_topic: impl Fn(&str) -> String,
        memory: &RocksMemory,
    ) -> Result<Self, StateError> {
        let rocks: Vec<&StoreBuilder> = defs
            .iter()
            .filter(|d| d.kind == StoreKind::RocksDb)
            .collect();
        let (db, path) = if rocks.is_empty() {
            (None, None)
        } else {
            let dir = dir.ok_or(StateError::NoStateDir)?;
            std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
                path: dir.display().to_string(),
                source,
            })?;
            let mut options = memory.options();
            options.create_if_missing(true);
            options.create_missing_column_families(true);
            // A flush of any store flushes them all, the meta column family with its
            // changelog positions included, so the write-ahead log is released after every
            // flush. Without it the meta family, written by every commit but far too small to
            // fill a memtable, kept every log alive up to max_total_wal_size (hundreds of
            // megabytes), and an open after kill -9 read all of it.
            options.set_atomic_flush(true);
            let mut cfs: Vec<String> = rocks.iter().map(|d| d.name.clone()).collect();
            cfs.push(META_CF.to_owned());
            // Column families of stores a newer version removed are opened too, as RocksDB
            // requires, and left alone.
            if let Ok(existing) = DB::list_cf(&options, dir) {
                for cf in existing {
                    if cf != "default" && !cfs.contains(&cf) {
                        cfs.push(cf);
                    }
                }
            }
            let descriptors = cfs
                .iter()
                .map(|cf| ColumnFamilyDescriptor::new(cf, memory.options()));
            let db = DB::open_cf_descriptors(&options, dir, descriptors).map_err(|e| {
                let path = dir.display().to_string();
                // RocksDB reports a held LOCK file as an I/O error.
                if e.kind() == rocksdb::ErrorKind::IOError && e.to_string().contains("lock") {
                    StateError::Locked { path }
                } else {
                    StateError::RocksDb { path, source: e }
                }
            })?;
            (Some(Arc::new(db)), Some(dir.to_path_buf()))
        };
        let path_str = path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let mut slots = BTreeMap::new();
        for def in defs {
            let backend = match (def.kind, &db) {
                (StoreKind::RocksDb, Some(db)) => Backend::Rocks {
                    db: Arc::clone(db),
                    path: path_str.clone(),
                },
                _ => Backend::Memory(BTreeMap::new()),
            };
            slots.insert(
                def.name.clone(),
                StoreSlot {
                    store: TransactionalStore::new(&def.name, backend),
                    def: def.clone(),
                    changelog_topic: def.changelog.then(|| changelog_topic(&def.name)),
                },
            );
        }
        Ok(TaskStores { db, path, slots })
    }

    fn rocks_error(&self, source: rocksdb::Error) -> StateError {
        StateError::RocksDb {
            path: self.db_path(),
            source,
        }
    }

    fn missing_cf(&self, what: impl Into<String>) -> StateError {
        StateError::MissingColumnFamily {
            path: self.db_path(),
            what: what.into(),
        }
    }

    /// The database's directory, for errors (empty without one).
    fn db_path(&self) -> String {
        self.path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }

    /// A typed view of key-value store `name`.
    pub(crate) fn typed<K: 'static, V: 'static>(
        &mut self,
        name: &str,
    ) -> Result<KeyValueStore<'_, K, V>, StateError> {
        let (store, window, key, value) = self.slot_with_serdes::<K, V>(name)?;
        check_shape(name, window, "key-value")?;
        Ok(KeyValueStore::new(store, key, value))
    }

    /// A typed view of window store `name`.
    pub(crate) fn typed_window<K: 'static, V: 'static>(
        &mut self,
        name: &str,
    ) -> Result<WindowStore<'_, K, V>, StateError> {
        let (store, window, key, value) = self.slot_with_serdes::<K, V>(name)?;
        let retention = check_shape(name, window, "window")?;
        Ok(WindowStore::new(store, retention, key, value))
    }

    /// A typed view of versioned store `name`.
    pub(crate) fn typed_versioned<K: 'static, V: 'static>(
        &mut self,
        name: &str,
    ) -> Result<VersionedStore<'_, K, V>, StateError> {
        let (store, window, key, value) = self.slot_with_serdes::<K, V>(name)?;
        let retention = check_shape(name, window, "versioned")?;
        Ok(VersionedStore::new(
            store,
            retention.retention_ms,
            key,
            value,
        ))
    }

    /// A typed view of session store `name`.
    pub(crate) fn typed_session<K: 'static, V: 'static>(
        &mut self,
        name: &str,
    ) -> Result<SessionStore<'_, K, V>, StateError> {
        let (store, window, key, value) = self.slot_with_serdes::<K, V>(name)?;
        let retention = check_shape(name, window, "session")?;
        Ok(SessionStore::new(store, retention, key, value))
    }

    /// Store `name` with its window retention (for window stores) and serdes, checked
    /// against the types asked for.
    #[allow(clippy::type_complexity)]
    fn slot_with_serdes<K: 'static, V: 'static>(
        &mut self,
        name: &str,
    ) -> Result<
        (
            &mut TransactionalStore,
            Option<WindowRetention>,
            &dyn Serde<K>,
            &dyn Serde<V>,
        ),
        StateError,
    > {
        let slot = self
            .slots
            .get_mut(name)
            .ok_or_else(|| StateError::Unknown(name.to_owned()))?;
        let key = slot.def.key_serde_as::<K>();
        let value = slot.def.value_serde_as::<V>();
        match (key, value) {
            (Some(key), Some(value)) => Ok((
                &mut slot.store,
                slot.def.window,
                key.as_ref(),
                value.as_ref(),
            )),
            _ => Err(StateError::TypeMismatch {
                store: name.to_owned(),
                expected: format!(
                    "{}, {}",
                    slot.def.key_type.name(),
                    slot.def.value_type.name()
                ),
                requested: format!(
                    "{}, {}",
                    std::any::type_name::<K>(),
                    std::any::type_name::<V>()
                ),
            }),
        }
    }

    /// Store names with their changelog topics (stores without a changelog are left out).
    pub(crate) fn changelogged(&self) -> Vec<(String, String)> {
        self.slots
            .values()
            .filter_map(|s| {
                s.changelog_topic
                    .as_ref()
                    .map(|t| (s.def.name.clone(), t.clone()))
            })
            .collect()
    }

    /// The uncommitted writes of every changelogged store: `(changelog topic, key, value)`.
    pub(crate) fn pending_changelog(&self) -> Vec<ChangelogEntry<'_>> {
        let mut out = Vec::new();
        for slot in self.slots.values() {
            if let Some(topic) = &slot.changelog_topic {
                for (k, v) in slot.store.pending() {
                    out.push((topic.as_str(), k.as_slice(), v.as_deref()));
                }
            }
        }
        out
    }

    /// The changelog offset from which to replay store `name`, as recorded with its data;
    /// `None` when the store must be restored from the changelog's beginning.
    pub(crate) fn changelog_position(&self, name: &str) -> Result<Option<i64>, StateError> {
        let Some(slot) = self.slots.get(name) else {
            return Err(StateError::Unknown(name.to_owned()));
        };
        let Backend::Rocks { .. } = slot.store.backend() else {
            return Ok(None);
        };
        self.meta_i64(&position_key(name))
    }

    /// An `i64` kept under `key` in the meta column family, if any.
    fn meta_i64(&self, key: &[u8]) -> Result<Option<i64>, StateError> {
        let Some(db) = &self.db else { return Ok(None) };
        let cf = db
            .cf_handle(META_CF)
            .ok_or_else(|| self.missing_cf("meta column family"))?;
        let raw = db.get_cf(cf, key).map_err(|e| self.rocks_error(e))?;
        Ok(raw.and_then(|b| {
            <[u8; 8]>::try_from(b.as_slice())
                .ok()
                .map(i64::from_be_bytes)
        }))
    }

    /// Applies every store's uncommitted writes to its backend after the Kafka transaction
    /// committed, together with the new changelog positions, in one atomic RocksDB batch.
    pub(crate) fn apply_committed(
        &mut self,
        positions: &BTreeMap<String, i64>,
    ) -> Result<(), StateError> {
        let mut batch = WriteBatch::default();
        for slot in self.slots.values_mut() {
            let (dropped, pending) = slot.store.take_pending();
            drop_ranges(slot, dropped, &mut batch);
            stage(slot, pending, &mut batch);
        }
        self.write_positions(&mut batch, positions)?;
        if let Some(db) = &self.db {
            db.write(batch).map_err(|e| self.rocks_error(e))?;
        }
        Ok(())
    }

    fn write_positions(
        &self,
        batch: &mut WriteBatch,
        positions: &BTreeMap<String, i64>,
    ) -> Result<(), StateError> {
        let Some(db) = &self.db else { return Ok(()) };
        let cf = db
            .cf_handle(META_CF)
            .ok_or_else(|| self.missing_cf("meta column family"))?;
        let now = crate::record::wall_clock_ms();
        for (store, position) in positions {
            if matches!(
                self.slots.get(store).map(|s| s.store.backend()),
                Some(Backend::Rocks { .. })
            ) {
                batch.put_cf(cf, position_key(store), position.to_be_bytes());
                batch.put_cf(cf, synced_key(store), now.to_be_bytes());
            }
        }
        Ok(())
    }

    /// When store `name` last took changelog records (milliseconds since the epoch): a copy
    /// that has not for longer than the changelog's `delete.retention.ms` may miss deletes
    /// that compaction has since removed. `None` for stores that never recorded it.
    pub(crate) fn synced_at(&self, name: &str) -> Result<Option<i64>, StateError> {
        self.meta_i64(&synced_key(name))
    }

    /// Deletes every key of store `name` and its changelog position, in one batch: the local
    /// copy cannot be trusted and the store is restored from its changelog's beginning.
    pub(crate) fn wipe(&mut self, name: &str) -> Result<(), StateError> {
        let slot = self
            .slots
            .get_mut(name)
            .ok_or_else(|| StateError::Unknown(name.to_owned()))?;
        slot.store.discard_pending();
        let db = match slot.store.backend_mut() {
            Backend::Memory(map) => {
                map.clear();
                return Ok(());
            }
            Backend::Rocks { db, .. } => Arc::clone(db),
        };
        let (Some(cf), Some(meta)) = (db.cf_handle(name), db.cf_handle(META_CF)) else {
            return Err(self.missing_cf(format!("column family of `{name}`")));
        };
        let mut batch = WriteBatch::default();
        // The range's end is exclusive: one byte past the last key covers it.
        let last = db
            .iterator_cf(cf, rocksdb::IteratorMode::End)
            .next()
            .transpose()
            .map_err(|e| self.rocks_error(e))?;
        if let Some((last, _)) = last {
            let mut end = last.to_vec();
            end.push(0);
            batch.delete_range_cf(cf, Vec::<u8>::new(), end);
        }
        batch.delete_cf(meta, position_key(name));
        batch.delete_cf(meta, synced_key(name));
        db.write(batch).map_err(|e| self.rocks_error(e))
    }

    /// Writes records replayed from store `name`'s changelog, and the position after them.
    pub(crate) fn apply_restored(
        &mut self,
        name: &str,
        records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        position: i64,
    ) -> Result<(), StateError> {
        let mut batch = WriteBatch::default();
        let slot = self
            .slots
            .get_mut(name)
            .ok_or_else(|| StateError::Unknown(name.to_owned()))?;
        stage(slot, records, &mut batch);
        let positions = BTreeMap::from([(name.to_owned(), position)]);
        self.write_positions(&mut batch, &positions)?;
        if let Some(db) = &self.db {
            db.write(batch).map_err(|e| self.rocks_error(e))?;
        }
        Ok(())
    }

    /// Writes a consistent copy of the RocksDB stores (committed data and changelog positions,
    /// never uncommitted writes) to `into`, which must not exist. Returns false when the task
    /// has no RocksDB store.
    pub(crate) fn checkpoint(&self, into: &Path) -> Result<bool, StateError> {
        let Some(db) = &self.db else { return Ok(false) };
        let checkpoint =
            rocksdb::checkpoint::Checkpoint::new(db).map_err(|e| self.rocks_error(e))?;
        checkpoint
            .create_checkpoint(into)
            .map_err(|e| self.rocks_error(e))?;
        Ok(true)
    }

    /// The state timeline the data belongs to; `None` before any savepoint restore.
    pub(crate) fn epoch(&self) -> Result<Option<String>, StateError> {
        let Some(db) = &self.db else { return Ok(None) };
        let cf = db
            .cf_handle(META_CF)
            .ok_or_else(|| self.missing_cf("meta column family"))?;
        let raw = db.get_cf(cf, EPOCH_KEY).map_err(|e| self.rocks_error(e))?;
        Ok(raw.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }

    /// Makes loaded snapshot data the task's base: records its timeline and, when given, the
    /// changelog positions replay continues from.
    pub(crate) fn set_base(
        &mut self,
        epoch: Option<&str>,
        positions: &BTreeMap<String, i64>,
    ) -> Result<(), StateError> {
        let Some(db) = self.db.clone() else {
            return Ok(());
        };
        let cf = db
            .cf_handle(META_CF)
            .ok_or_else(|| self.missing_cf("meta column family"))?;
        let mut batch = WriteBatch::default();
        match epoch {
            Some(epoch) => batch.put_cf(cf, EPOCH_KEY, epoch.as_bytes()),
            None => batch.delete_cf(cf, EPOCH_KEY),
        }
        self.write_positions(&mut batch, positions)?;
        db.write(batch).map_err(|e| self.rocks_error(e))
    }

    /// The identity of every store, with its changelog position.
    pub(crate) fn identities(&self) -> Result<Vec<crate::snapshot::StoreIdentity>, StateError> {
        self.slots
            .values()
            .map(|slot| Ok(slot.def.identity(self.changelog_position(&slot.def.name)?)))
            .collect()
    }

    /// Read-only handles on the RocksDB stores, for queries from other threads.
    pub(crate) fn readers(&self) -> Vec<super::StoreReader> {
        let Some(db) = &self.db else {
            return Vec::new();
        };
        self.slots
            .values()
            .filter(|slot| slot.def.kind == StoreKind::RocksDb)
            .map(|slot| super::StoreReader::new(db, &slot.def.name))
            .collect()
    }

    /// Drops every store's uncommitted writes (the transaction aborted).
    pub(crate) fn discard_pending(&mut self) {
        for slot in self.slots.values_mut() {
            slot.store.discard_pending();
        }
    }
}

/// Checks that a store of `window` retention has the shape `requested` (`key-value`,
/// `window` or `session`), returning its retention (unused for key-value stores).
fn check_shape(
    store: &str,
    window: Option<WindowRetention>,
    requested: &'static str,
) -> Result<WindowRetention, StateError> {
    let actual = match window.map(|w| w.layout) {
        None => "key-value",
        Some(WindowLayout::Time) => "window",
        Some(WindowLayout::Session) => "session",
        Some(WindowLayout::Versioned) => "versioned",
    };
    if actual != requested {
        return Err(StateError::WrongShape {
            store: store.to_owned(),
            actual,
            requested,
        });
    }
    Ok(window.unwrap_or(WindowRetention {
        layout: WindowLayout::Time,
        retention_ms: 0,
        segment_ms: 1,
    }))
}

/// Deletes the keys of `ranges` from an in-memory store directly, or stages one range
/// tombstone per range in `batch` for RocksDB.
fn drop_ranges(
    slot: &mut StoreSlot,
    ranges: Vec<super::transactional::DroppedRange>,
    batch: &mut WriteBatch,
) {
    match slot.store.backend_mut() {
        Backend::Memory(map) => {
            for (from, to) in ranges {
                let doomed: Vec<Vec<u8>> = map.range(from..to).map(|(k, _)| k.clone()).collect();
                for key in doomed {
                    map.remove(&key);
                }
            }
        }
        Backend::Rocks { db, .. } => {
            if let Some(cf) = db.cf_handle(&slot.def.name) {
                for (from, to) in ranges {
                    batch.delete_range_cf(cf, from, to);
                }
            }
        }
    }
}

/// Writes `records` into an in-memory store directly, or stages them in `batch` for RocksDB.
fn stage(
    slot: &mut StoreSlot,
    records: impl IntoIterator<Item = (Vec<u8>, Option<Vec<u8>>)>,
    batch: &mut WriteBatch,
) {
    match slot.store.backend_mut() {
        Backend::Memory(map) => {
            for (k, v) in records {
                match v {
                    Some(v) => map.insert(k, v),
                    None => map.remove(&k),
                };
            }
        }
        Backend::Rocks { db, .. } => {
            if let Some(cf) = db.cf_handle(&slot.def.name) {
                for (k, v) in records {
                    match v {
                        Some(v) => batch.put_cf(cf, k, v),
                        None => batch.delete_cf(cf, k),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "task_stores_tests.rs"]
mod tests;
