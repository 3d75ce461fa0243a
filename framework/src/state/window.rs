//! Window stores: values per key and window start, laid out by time so that expiry and
//! window-close scans are key ranges, with a small operator-progress record beside them.
//!
//! Key layout (the same bytes in RocksDB and in the changelog):
//!
//! ```text
//! 0x00 | name                      operator progress (observed time, emitted-up-to)
//! 0x01 | start (8 bytes) | key      one window's value; start is big-endian with the sign
//!                                   bit flipped, so byte order is time order
//! ```
//!
//! Windows closing or expiring are those with the oldest starts: a scan or a range delete
//! over a prefix, never a visit of every key.

use std::marker::PhantomData;

use super::codec::{write_progress, StoreCodec};
use super::transactional::TransactionalStore;
use super::{StateError, WindowRetention};
use crate::serde::Serde;

const PROGRESS_TAG: u8 = 0x00;
const WINDOW_TAG: u8 = 0x01;

/// The bytes of a window start, ordered as time.
pub(super) fn time_bytes(start: i64) -> [u8; 8] {
    // Flipping the sign bit maps i64 order onto unsigned byte order.
    ((start as u64) ^ (1 << 63)).to_be_bytes()
}

pub(super) fn time_from_bytes(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// The store key of window `start` of the key encoded as `key`.
fn window_key(start: i64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + key.len());
    out.push(WINDOW_TAG);
    out.extend_from_slice(&time_bytes(start));
    out.extend_from_slice(key);
    out
}

/// The first store key of windows starting at `start` or later.
fn starts_from(start: i64) -> Vec<u8> {
    window_key(start, &[])
}

/// The committed windows of the key encoded as `key` with starts in `[from, to]`, from a
/// raw iterator over the store: `(start, value bytes)`.
pub(crate) fn scan_key<E>(
    entries: impl Iterator<Item = Result<(Box<[u8]>, Box<[u8]>), E>>,
    key: &[u8],
    to: i64,
) -> Result<Vec<(i64, Vec<u8>)>, E> {
    let mut out = Vec::new();
    for entry in entries {
        let (raw, value) = entry?;
        let Some((start, k)) = split_window_key(&raw) else {
            break;
        };
        if start > to {
            break;
        }
        if k == key {
            out.push((start, value.to_vec()));
        }
    }
    Ok(out)
}

/// The first raw key of windows starting at `start` or later.
pub(crate) fn scan_from(start: i64) -> Vec<u8> {
    starts_from(start)
}

/// Splits a store key into window start and encoded key.
fn split_window_key(raw: &[u8]) -> Option<(i64, &[u8])> {
    let (tag, rest) = raw.split_first()?;
    if *tag != WINDOW_TAG || rest.len() < 8 {
        return None;
    }
    let (time, key) = rest.split_at(8);
    let time = <[u8; 8]>::try_from(time).ok()?;
    Some((time_from_bytes(time), key))
}

pub(super) fn progress_key(name: &str) -> Vec<u8> {
    let mut out = vec![PROGRESS_TAG];
    out.extend_from_slice(name.as_bytes());
    out
}

/// How far a windowed operator has come: part of its committed state (changelogged with its
/// windows), so a late/on-time decision and the windows already emitted are the same after a
/// crash, a move or a savepoint restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowProgress {
    /// The largest record timestamp the operator has seen (`i64::MIN` before the first).
    pub observed_time: i64,
    /// Every window ending at or before this has been emitted as final (`i64::MIN` before
    /// the first emission).
    pub emitted_through: i64,
}

impl Default for WindowProgress {
    fn default() -> Self {
        WindowProgress {
            observed_time: i64::MIN,
            emitted_through: i64::MIN,
        }
    }
}

impl WindowProgress {
    pub(super) fn encode(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&self.observed_time.to_be_bytes());
        out.extend_from_slice(&self.emitted_through.to_be_bytes());
        out
    }

    pub(super) fn decode(bytes: &[u8]) -> Option<Self> {
        let observed = <[u8; 8]>::try_from(bytes.get(0..8)?).ok()?;
        let emitted = <[u8; 8]>::try_from(bytes.get(8..16)?).ok()?;
        Some(WindowProgress {
            observed_time: i64::from_be_bytes(observed),
            emitted_through: i64::from_be_bytes(emitted),
        })
    }
}

/// A typed view of a window store for the duration of one processor call: values per key
/// and window start, with read-your-writes over the open transaction like
/// [`KeyValueStore`](super::KeyValueStore).
pub struct WindowStore<'a, K, V> {
    store: &'a mut TransactionalStore,
    retention: WindowRetention,
    key_serde: &'a dyn Serde<K>,
    value_serde: &'a dyn Serde<V>,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> std::fmt::Debug for WindowStore<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowStore")
            .field("name", &self.store.name())
            .field("retention_ms", &self.retention.retention_ms)
            .finish_non_exhaustive()
    }
}

impl<K: 'static, V: 'static> StoreCodec<K, V> for WindowStore<'_, K, V> {
    fn raw(&self) -> &TransactionalStore {
        self.store
    }
    fn key_serde(&self) -> &dyn Serde<K> {
        self.key_serde
    }
    fn value_serde(&self) -> &dyn Serde<V> {
        self.value_serde
    }
}

impl<'a, K: 'static, V: 'static> WindowStore<'a, K, V> {
    pub(crate) fn new(
        store: &'a mut TransactionalStore,
        retention: WindowRetention,
        key_serde: &'a dyn Serde<K>,
        value_serde: &'a dyn Serde<V>,
    ) -> Self {
        WindowStore {
            store,
            retention,
            key_serde,
            value_serde,
            _types: PhantomData,
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        self.store.name()
    }

    /// How long windows are kept past their start, in milliseconds of operator time.
    pub fn retention_ms(&self) -> i64 {
        self.retention.retention_ms
    }

    /// The value of `key` in the window starting at `start`.
    ///
    /// # Errors
    /// Fails on a storage or decoding error.
    pub fn get(&self, key: &K, start: i64) -> Result<Option<V>, StateError> {
        let raw = window_key(start, &self.encode_key(key)?);
        match self.store.get(&raw)? {
            Some(bytes) => self.decode_value(&bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Stores `value` for `key` in the window starting at `start`.
    ///
    /// # Errors
    /// Fails on an encoding error.
    pub fn put(&mut self, key: &K, start: i64, value: &V) -> Result<(), StateError> {
        let raw = window_key(start, &self.encode_key(key)?);
        let value = self.encode_value(value)?;
        self.store.put(raw, Some(value));
        Ok(())
    }

    /// Removes `key`'s window starting at `start`.
    ///
    /// # Errors
    /// Fails on an encoding error.
    pub fn delete(&mut self, key: &K, start: i64) -> Result<(), StateError> {
        let raw = window_key(start, &self.encode_key(key)?);
        self.store.put(raw, None);
        Ok(())
    }

    /// Every window with a start in `[from, to)`, as `(start, key, value)` in start order
    /// (then by encoded key).
    ///
    /// # Errors
    /// Fails on a storage or decoding error.
    pub fn starting_between(&self, from: i64, to: i64) -> Result<Vec<(i64, K, V)>, StateError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let entries = self
            .store
            .range(&starts_from(from), Some(&starts_from(to)))?;
        entries
            .into_iter()
            .filter_map(|(raw, value)| {
                let (start, key) = split_window_key(&raw)?;
                Some(
                    self.decode_key(key)
                        .and_then(|k| Ok((start, k, self.decode_value(&value)?))),
                )
            })
            .collect()
    }

    /// `key`'s windows with a start in `[from, to)`, as `(start, value)` in start order.
    ///
    /// # Errors
    /// Fails on a storage or decoding error.
    pub fn fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>, StateError> {
        if from >= to {
            return Ok(Vec::new());
        }
        let wanted = self.encode_key(key)?;
        let entries = self
            .store
            .range(&starts_from(from), Some(&starts_from(to)))?;
        entries
            .into_iter()
            .filter_map(|(raw, value)| {
                let (start, key) = split_window_key(&raw)?;
                (key == wanted.as_slice()).then(|| Ok((start, self.decode_value(&value)?)))
            })
            .collect()
    }

    /// The operator progress recorded under `name` (the default before the first record).
    ///
    /// # Errors
    /// Fails on a storage error or a malformed record.
    pub fn progress(&self, name: &str) -> Result<WindowProgress, StateError> {
        self.read_progress(name)
    }

    /// Records operator progress under `name`, committed with the windows.
    pub fn set_progress(&mut self, name: &str, progress: WindowProgress) {
        write_progress(self.store, name, progress);
    }

    /// The first window start kept when the operator's time is `observed_time`: starts older
    /// than the time minus the retention are dropped a whole segment at a time.
    pub fn expiry_boundary(&self, observed_time: i64) -> i64 {
        let segment = self.retention.segment_ms;
        let cutoff = observed_time.saturating_sub(self.retention.retention_ms);
        cutoff
            .div_euclid(segment)
            .checked_mul(segment)
            .unwrap_or(i64::MIN)
    }

    /// Drops every window starting before `start` with one range delete when the
    /// transaction commits (not changelogged: the changelog deletes them by age).
    pub fn drop_before(&mut self, start: i64) {
        self.store
            .delete_range(starts_from(i64::MIN), starts_from(start));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::serde::{I64Serde, StringSerde};
    use crate::state::{RocksMemory, StoreBuilder, StoreKind, TaskStores};

    fn open(dir: &std::path::Path) -> TaskStores {
        let defs = [StoreBuilder::window(
            "w",
            StoreKind::RocksDb,
            StringSerde,
            I64Serde,
            120_000,
        )];
        TaskStores::open(
            Some(dir),
            &defs,
            |s| format!("app-{s}-changelog"),
            &RocksMemory::default(),
        )
        .unwrap()
    }

    #[test]
    fn dropped_segments_vanish_at_commit_in_rocksdb_and_later_writes_survive() {
        let dir = tempfile::tempdir().unwrap();
        let mut stores = open(dir.path());
        let a = "a".to_owned();
        {
            let mut w = stores.typed_window::<String, i64>("w").unwrap();
            for start in [0, 30_000, 60_000, 90_000] {
                w.put(&a, start, &start).unwrap();
            }
            w.set_progress(
                "op",
                WindowProgress {
                    observed_time: 90_000,
                    emitted_through: 10,
                },
            );
        }
        stores.apply_committed(&BTreeMap::new()).unwrap();
        {
            let mut w = stores.typed_window::<String, i64>("w").unwrap();
            w.put(&a, 10_000, &1).unwrap(); // before the drop: dropped with its segment
            assert_eq!(w.expiry_boundary(185_000), 60_000);
            w.drop_before(60_000);
            w.put(&a, 20_000, &2).unwrap(); // after the drop: kept
            assert_eq!(
                w.fetch(&a, 0, i64::MAX).unwrap(),
                vec![(20_000, 2), (60_000, 60_000), (90_000, 90_000)],
                "reads see the pending drop"
            );
        }
        let changelog: Vec<Vec<u8>> = stores
            .pending_changelog()
            .into_iter()
            .map(|(_, k, _)| k.to_vec())
            .collect();
        assert_eq!(
            changelog,
            vec![window_key(20_000, b"a")],
            "only the later write"
        );
        stores.apply_committed(&BTreeMap::new()).unwrap();
        drop(stores);

        let mut stores = open(dir.path());
        let w = stores.typed_window::<String, i64>("w").unwrap();
        assert_eq!(
            w.starting_between(i64::MIN, i64::MAX).unwrap(),
            vec![
                (20_000, a.clone(), 2),
                (60_000, a.clone(), 60_000),
                (90_000, a, 90_000)
            ]
        );
        assert_eq!(
            w.progress("op").unwrap(),
            WindowProgress {
                observed_time: 90_000,
                emitted_through: 10
            },
            "progress is not a window: no drop touches it"
        );
    }

    #[test]
    fn a_window_store_is_not_a_key_value_store() {
        let dir = tempfile::tempdir().unwrap();
        let mut stores = open(dir.path());
        let err = stores.typed::<String, i64>("w").unwrap_err();
        assert!(err.to_string().contains("is a window store"), "{err}");
    }

    #[test]
    fn window_keys_sort_by_start_then_key_and_split_back() {
        let keys = [
            window_key(-5, b"b"),
            window_key(0, b"a"),
            window_key(0, b"b"),
            window_key(1, b""),
            window_key(1_000, b"a"),
            window_key(i64::MAX, b"a"),
        ];
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys);
        assert_eq!(split_window_key(&keys[4]), Some((1_000, &b"a"[..])));
        assert_eq!(split_window_key(&keys[0]), Some((-5, &b"b"[..])));
        assert!(progress_key("op") < starts_from(i64::MIN));
        assert_eq!(split_window_key(&progress_key("op")), None);
    }

    #[test]
    fn progress_round_trips() {
        let p = WindowProgress {
            observed_time: 42,
            emitted_through: -7,
        };
        assert_eq!(WindowProgress::decode(&p.encode()), Some(p));
        assert_eq!(WindowProgress::decode(&[1, 2]), None);
    }
}
