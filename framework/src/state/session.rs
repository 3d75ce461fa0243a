//! Session stores: values per key and session `[start, end]`, found by key and end time,
//! expired a segment of ends at a time, with an index by end for final emission.
//!
//! Key layout (the same bytes in RocksDB and in the changelog):
//!
//! ```text
//! 0x00 | name                                           operator progress
//! 0x01 | segment | key length (4) | key | end | start    a session's value
//! 0x02 | end | key length (4) | key | start             sessions not yet emitted as final
//! ```
//!
//! Times are 8 bytes, big-endian with the sign bit flipped (byte order is time order); the
//! segment is the session end rounded down to the segment span. A key's sessions ending at
//! or after a time are a few short scans (one per segment since then); expiry drops whole
//! segments with one range delete; the sessions due for final emission are a prefix of the
//! index.

use std::marker::PhantomData;

use super::codec::{write_progress, StoreCodec};
use super::transactional::TransactionalStore;
use super::window::{time_bytes, time_from_bytes, WindowProgress};
use super::{StateError, WindowRetention};
use crate::serde::Serde;

const SESSION_TAG: u8 = 0x01;
const INDEX_TAG: u8 = 0x02;

/// One session of a key: `[start, end]`, both inclusive, and its value.
pub type SessionEntry<V> = (i64, i64, V);

fn key_prefix(tag: u8, time: i64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(13 + key.len() + 16);
    out.push(tag);
    out.extend_from_slice(&time_bytes(time));
    out.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// Splits `<length> | key | rest` into key and rest.
fn split_key(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = raw.split_at_checked(4)?;
    let len = usize::try_from(u32::from_be_bytes(len.try_into().ok()?)).ok()?;
    rest.split_at_checked(len)
}

/// The times encoded in `bytes` (8 bytes each).
fn times<const N: usize>(bytes: &[u8]) -> Option<[i64; N]> {
    if bytes.len() != 8 * N {
        return None;
    }
    let mut out = [0; N];
    for (i, chunk) in bytes.chunks_exact(8).enumerate() {
        out[i] = time_from_bytes(chunk.try_into().ok()?);
    }
    Some(out)
}

/// The committed sessions of the key encoded as `key`, from a raw iterator over the whole
/// store: `(start, end, value bytes)` in end order.
pub(crate) fn scan_key<E>(
    entries: impl Iterator<Item = Result<(Box<[u8]>, Box<[u8]>), E>>,
    key: &[u8],
) -> Result<Vec<(i64, i64, Vec<u8>)>, E> {
    let mut out = Vec::new();
    for entry in entries {
        let (raw, value) = entry?;
        if raw.first() != Some(&SESSION_TAG) {
            continue;
        }
        let Some((k, [end, start])) = raw
            .get(9..)
            .and_then(split_key)
            .and_then(|(k, rest)| Some((k, times::<2>(rest)?)))
        else {
            continue;
        };
        if k == key {
            out.push((start, end, value.to_vec()));
        }
    }
    out.sort_by_key(|(_, end, _)| *end);
    Ok(out)
}

/// A typed view of a session store for the duration of one processor call, with
/// read-your-writes over the open transaction.
pub struct SessionStore<'a, K, V> {
    store: &'a mut TransactionalStore,
    retention: WindowRetention,
    key_serde: &'a dyn Serde<K>,
    value_serde: &'a dyn Serde<V>,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> std::fmt::Debug for SessionStore<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionStore")
            .field("name", &self.store.name())
            .field("retention_ms", &self.retention.retention_ms)
            .finish_non_exhaustive()
    }
}

impl<K: 'static, V: 'static> StoreCodec<K, V> for SessionStore<'_, K, V> {
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

impl<'a, K: 'static, V: 'static> SessionStore<'a, K, V> {
    pub(crate) fn new(
        store: &'a mut TransactionalStore,
        retention: WindowRetention,
        key_serde: &'a dyn Serde<K>,
        value_serde: &'a dyn Serde<V>,
    ) -> Self {
        SessionStore {
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

    fn segment(&self, end: i64) -> i64 {
        let span = self.retention.segment_ms;
        end.div_euclid(span).checked_mul(span).unwrap_or(i64::MIN)
    }

    fn session_key(&self, key: &[u8], start: i64, end: i64) -> Vec<u8> {
        let mut out = key_prefix(SESSION_TAG, self.segment(end), key);
        out.extend_from_slice(&time_bytes(end));
        out.extend_from_slice(&time_bytes(start));
        out
    }

    fn index_key(key: &[u8], start: i64, end: i64) -> Vec<u8> {
        let mut out = key_prefix(INDEX_TAG, end, key);
        out.extend_from_slice(&time_bytes(start));
        out
    }

    /// `key`'s sessions that end at or after `from_end` and start at or before `to_start`,
    /// in end order. `latest_end` bounds the segments searched: no session of the store
    /// ends after it (the operator's time).
    ///
    /// # Errors
    /// Fails on a storage or decoding error.
    pub fn find(
        &self,
        key: &K,
        from_end: i64,
        to_start: i64,
        latest_end: i64,
    ) -> Result<Vec<SessionEntry<V>>, StateError> {
        let key = self.encode_key(key)?;
        let mut out = Vec::new();
        let mut segment = self.segment(from_end);
        let last = self.segment(latest_end.max(from_end));
        while segment <= last {
            let prefix = key_prefix(SESSION_TAG, segment, &key);
            let mut from = prefix.clone();
            from.extend_from_slice(&time_bytes(from_end));
            let mut to = prefix.clone();
            to.extend_from_slice(&[0xFF; 17]);
            for (raw, value) in self.store.range(&from, Some(&to))? {
                let Some([end, start]) = raw
                    .get(9..)
                    .and_then(split_key)
                    .and_then(|(_, rest)| times::<2>(rest))
                else {
                    continue;
                };
                if start <= to_start {
                    out.push((start, end, self.decode_value(&value)?));
                }
            }
            segment = match segment.checked_add(self.retention.segment_ms) {
                Some(next) => next,
                None => break,
            };
        }
        Ok(out)
    }

    /// Stores `value` for `key`'s session `[start, end]`.
    ///
    /// # Errors
    /// Fails on an encoding error.
    pub fn put(&mut self, key: &K, start: i64, end: i64, value: &V) -> Result<(), StateError> {
        let raw = self.session_key(&self.encode_key(key)?, start, end);
        let value = self.encode_value(value)?;
        self.store.put(raw, Some(value));
        Ok(())
    }

    /// Removes `key`'s session `[start, end]` (and its emission index entry).
    ///
    /// # Errors
    /// Fails on an encoding error.
    pub fn remove(&mut self, key: &K, start: i64, end: i64) -> Result<(), StateError> {
        let key = self.encode_key(key)?;
        self.store.put(self.session_key(&key, start, end), None);
        self.store.put(Self::index_key(&key, start, end), None);
        Ok(())
    }

    /// Marks `key`'s session `[start, end]` as due for final emission once it ends.
    ///
    /// # Errors
    /// Fails on an encoding error.
    pub fn await_emission(&mut self, key: &K, start: i64, end: i64) -> Result<(), StateError> {
        let raw = Self::index_key(&self.encode_key(key)?, start, end);
        self.store.put(raw, Some(Vec::new()));
        Ok(())
    }

    /// The sessions awaiting emission that end before `to`, as `(key, start, end, value)`
    /// in end order; their index entries are removed (they are emitted now, and each key is
    /// removed by itself: no range tombstone per call).
    ///
    /// # Errors
    /// Fails on a storage or decoding error.
    pub fn take_ending_before(&mut self, to: i64) -> Result<Vec<(K, SessionEntry<V>)>, StateError> {
        let from = vec![INDEX_TAG];
        let mut until = vec![INDEX_TAG];
        until.extend_from_slice(&time_bytes(to));
        let mut out = Vec::new();
        for (raw, _) in self.store.range(&from, Some(&until))? {
            let Some([end]) = raw.get(1..9).and_then(times::<1>) else {
                continue;
            };
            let Some((key, [start])) = raw
                .get(9..)
                .and_then(split_key)
                .and_then(|(key, rest)| Some((key, times::<1>(rest)?)))
            else {
                continue;
            };
            let Some(value) = self.store.get(&self.session_key(key, start, end))? else {
                continue;
            };
            let decoded = self.decode_key(key)?;
            out.push((decoded, (start, end, self.decode_value(&value)?)));
        }
        for (key, (start, end, _)) in &out {
            let key = self.encode_key(key)?;
            self.store.put(Self::index_key(&key, *start, *end), None);
        }
        Ok(out)
    }

    /// The operator progress recorded under `name` (the default before the first record).
    ///
    /// # Errors
    /// Fails on a storage error or a malformed record.
    pub fn progress(&self, name: &str) -> Result<WindowProgress, StateError> {
        self.read_progress(name)
    }

    /// Records operator progress under `name`, committed with the sessions.
    pub fn set_progress(&mut self, name: &str, progress: WindowProgress) {
        write_progress(self.store, name, progress);
    }

    /// The first segment kept when the operator's time is `observed_time`: sessions ending
    /// before the time minus the retention go a whole segment at a time.
    pub fn expiry_boundary(&self, observed_time: i64) -> i64 {
        self.segment(observed_time.saturating_sub(self.retention.retention_ms))
    }

    /// Drops every segment of sessions ending before `segment` (a boundary from
    /// [`expiry_boundary`](Self::expiry_boundary)) with one range delete at commit.
    pub fn drop_before(&mut self, segment: i64) {
        let mut from = vec![SESSION_TAG];
        from.extend_from_slice(&time_bytes(i64::MIN));
        let mut to = vec![SESSION_TAG];
        to.extend_from_slice(&time_bytes(segment));
        self.store.delete_range(from, to);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::serde::{I64Serde, StringSerde};
    use crate::state::{RocksMemory, StoreBuilder, StoreKind, TaskStores};

    fn open(dir: &std::path::Path) -> TaskStores {
        let defs = [StoreBuilder::session(
            "s",
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
    fn sessions_are_found_by_key_and_end_across_segments_and_not_by_key_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let mut stores = open(dir.path());
        let (ab, abc) = ("ab".to_owned(), "abc".to_owned());
        {
            let mut s = stores.typed_session::<String, i64>("s").unwrap();
            s.put(&ab, 10, 20, &1).unwrap();
            s.put(&ab, 59_000, 61_000, &2).unwrap(); // ends in the second segment
            s.put(&ab, 200_000, 200_500, &3).unwrap();
            s.put(&abc, 15, 25, &9).unwrap();
        }
        stores.apply_committed(&BTreeMap::new()).unwrap();
        let s = stores.typed_session::<String, i64>("s").unwrap();
        assert_eq!(
            s.find(&ab, 0, i64::MAX, 300_000).unwrap(),
            vec![(10, 20, 1), (59_000, 61_000, 2), (200_000, 200_500, 3)]
        );
        assert_eq!(
            s.find(&ab, 21, 100_000, 300_000).unwrap(),
            vec![(59_000, 61_000, 2)],
            "ends before 21 and starts after 100 000 are left out"
        );
        assert_eq!(
            s.find(&abc, 0, i64::MAX, 300_000).unwrap(),
            vec![(15, 25, 9)]
        );
    }

    #[test]
    fn the_emission_index_yields_sessions_in_end_order_once() {
        let dir = tempfile::tempdir().unwrap();
        let mut stores = open(dir.path());
        let mut s = stores.typed_session::<String, i64>("s").unwrap();
        let (a, b) = ("a".to_owned(), "b".to_owned());
        s.put(&a, 0, 30, &1).unwrap();
        s.await_emission(&a, 0, 30).unwrap();
        s.put(&b, 5, 10, &2).unwrap();
        s.await_emission(&b, 5, 10).unwrap();
        s.put(&b, 40, 50, &3).unwrap();
        s.await_emission(&b, 40, 50).unwrap();
        s.remove(&b, 40, 50).unwrap(); // merged away before it ended
        assert_eq!(
            s.take_ending_before(100).unwrap(),
            vec![(b.clone(), (5, 10, 2)), (a, (0, 30, 1))]
        );
        assert!(s.take_ending_before(100).unwrap().is_empty());
    }

    #[test]
    fn expiry_drops_whole_segments_of_ends() {
        let dir = tempfile::tempdir().unwrap();
        let mut stores = open(dir.path());
        let mut s = stores.typed_session::<String, i64>("s").unwrap();
        let a = "a".to_owned();
        s.put(&a, 0, 59_999, &1).unwrap();
        s.put(&a, 0, 60_000, &2).unwrap();
        let boundary = s.expiry_boundary(185_000);
        assert_eq!(boundary, 60_000);
        s.drop_before(boundary);
        assert_eq!(
            s.find(&a, 0, i64::MAX, 185_000).unwrap(),
            vec![(0, 60_000, 2)]
        );
    }
}
