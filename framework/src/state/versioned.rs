//! Versioned key-value stores: every value of a key with the time it became valid, so a
//! lookup can ask for the value as of a time (a stream-table join as of the stream record's
//! time). Versions older than the history retention are dropped as newer ones arrive.
//!
//! Key layout (the same bytes in RocksDB and in the changelog):
//!
//! ```text
//! 0x01 | key length (4) | key | time    an older version: tag | value
//! 0x02 | key                            the latest version: time (8) | tag | value
//! ```
//!
//! A tag of 0 marks a deletion (the key had no value from that time), 1 a value.

use std::marker::PhantomData;

use super::codec::StoreCodec;
use super::transactional::TransactionalStore;
use super::window::{time_bytes, time_from_bytes};
use super::StateError;
use crate::serde::{Serde, SerdeError};

const HISTORY_TAG: u8 = 0x01;
const LATEST_TAG: u8 = 0x02;

fn history_prefix(key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + key.len() + 8);
    out.push(HISTORY_TAG);
    out.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(key);
    out
}

fn history_key(key: &[u8], at: i64) -> Vec<u8> {
    let mut out = history_prefix(key);
    out.extend_from_slice(&time_bytes(at));
    out
}

fn latest_key(key: &[u8]) -> Vec<u8> {
    let mut out = vec![LATEST_TAG];
    out.extend_from_slice(key);
    out
}

/// A value or a deletion, as stored.
fn encode(value: Option<Vec<u8>>) -> Vec<u8> {
    match value {
        None => vec![0],
        Some(bytes) => {
            let mut out = Vec::with_capacity(1 + bytes.len());
            out.push(1);
            out.extend_from_slice(&bytes);
            out
        }
    }
}

/// A version as stored: the time it became valid and its value bytes (`None`: deleted).
pub type RawVersion = (i64, Option<Vec<u8>>);

/// A stored value or deletion (`tag | value`) as the value bytes, `None` for a deletion.
fn decode_raw(stored: &[u8]) -> Option<Vec<u8>> {
    match stored.split_first() {
        Some((1, value)) => Some(value.to_vec()),
        _ => None,
    }
}

/// Every version of the encoded `key` read from raw store entries: the latest through `get`
/// and the older ones through `scan` (a forward scan from a start key, pairs of key and
/// value bytes). Returns `(valid from, value bytes or None for a deletion)`, oldest first.
pub(crate) fn versions_of<E>(
    key: &[u8],
    get: impl FnOnce(&[u8]) -> Result<Option<Vec<u8>>, E>,
    scan: impl FnOnce(&[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>, E>,
) -> Result<Vec<RawVersion>, E> {
    let prefix = history_prefix(key);
    let mut out: Vec<RawVersion> = scan(&prefix)?
        .into_iter()
        .take_while(|(raw, _)| raw.starts_with(&prefix))
        .filter_map(|(raw, value)| {
            let time: [u8; 8] = raw.get(prefix.len()..)?.try_into().ok()?;
            Some((time_from_bytes(time), decode_raw(&value)))
        })
        .collect();
    if let Some(latest) = get(&latest_key(key))? {
        if let Some((time, rest)) = latest.split_at_checked(8) {
            let time: [u8; 8] = time.try_into().unwrap_or([0; 8]);
            out.push((time_from_bytes(time), decode_raw(rest)));
        }
    }
    Ok(out)
}

/// A typed view of a versioned store for the duration of one processor call.
pub struct VersionedStore<'a, K, V> {
    store: &'a mut TransactionalStore,
    history_ms: i64,
    key_serde: &'a dyn Serde<K>,
    value_serde: &'a dyn Serde<V>,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> std::fmt::Debug for VersionedStore<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionedStore")
            .field("name", &self.store.name())
            .field("history_ms", &self.history_ms)
            .finish_non_exhaustive()
    }
}

impl<K: 'static, V: 'static> StoreCodec<K, V> for VersionedStore<'_, K, V> {
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

impl<'a, K: 'static, V: 'static> VersionedStore<'a, K, V> {
    pub(crate) fn new(
        store: &'a mut TransactionalStore,
        history_ms: i64,
        key_serde: &'a dyn Serde<K>,
        value_serde: &'a dyn Serde<V>,
    ) -> Self {
        VersionedStore {
            store,
            history_ms,
            key_serde,
            value_serde,
            _types: PhantomData,
        }
    }

    fn decode(&self, stored: &[u8]) -> Result<Option<V>, StateError> {
        match stored.split_first() {
            Some((0, _)) => Ok(None),
            Some((1, bytes)) => self.decode_value(bytes).map(Some),
            _ => Err(self.serde_error(SerdeError::new("a stored version has no valid tag"))),
        }
    }

    /// The latest version of the encoded key: its time and stored bytes.
    fn latest_raw(&self, key: &[u8]) -> Result<Option<(i64, Vec<u8>)>, StateError> {
        let Some(raw) = self.store.get(&latest_key(key))? else {
            return Ok(None);
        };
        let (time, rest) = raw
            .split_at_checked(8)
            .ok_or_else(|| self.serde_error(SerdeError::new("a latest version is cut short")))?;
        let time = time_from_bytes(time.try_into().unwrap_or([0; 8]));
        Ok(Some((time, rest.to_vec())))
    }

    /// Records `value` (`None`: a deletion) for `key` from time `at`. Returns true when it is
    /// the key's latest version (an older one only fills in history).
    ///
    /// # Errors
    /// Fails on a storage or encoding error.
    pub fn put(&mut self, key: &K, at: i64, value: Option<&V>) -> Result<bool, StateError> {
        let raw_key = self.encode_key(key)?;
        let bytes = value.map(|v| self.encode_value(v)).transpose()?;
        let stored = encode(bytes);
        let latest = self.latest_raw(&raw_key)?;
        let is_latest = latest.as_ref().is_none_or(|(t, _)| at >= *t);
        if is_latest {
            if let Some((t, old)) = latest.clone().filter(|(t, _)| *t < at) {
                self.store.put(history_key(&raw_key, t), Some(old));
            }
            let mut value = time_bytes(at).to_vec();
            value.extend_from_slice(&stored);
            self.store.put(latest_key(&raw_key), Some(value));
        } else {
            self.store.put(history_key(&raw_key, at), Some(stored));
        }
        // Versions that ended before the history retention are no longer asked for.
        let newest = if is_latest {
            at
        } else {
            latest.map_or(at, |(t, _)| t)
        };
        self.expire(&raw_key, newest.saturating_sub(self.history_ms))?;
        Ok(is_latest)
    }

    /// Drops the key's older versions that a still-kept version replaced before `before`.
    fn expire(&mut self, key: &[u8], before: i64) -> Result<(), StateError> {
        let prefix = history_prefix(key);
        let versions = self.store.range(&prefix, Some(&history_key(key, before)))?;
        // The newest of them stays: it is still the value as of times up to its successor.
        for (raw, _) in versions.iter().rev().skip(1) {
            self.store.put(raw.clone(), None);
        }
        Ok(())
    }

    /// The value of `key` as of time `at`: the version with the latest time not after `at`
    /// (`None` when there is none, or it is a deletion).
    ///
    /// # Errors
    /// Fails on a storage or decoding error.
    pub fn get_as_of(&self, key: &K, at: i64) -> Result<Option<V>, StateError> {
        let raw_key = self.encode_key(key)?;
        if let Some((time, stored)) = self.latest_raw(&raw_key)? {
            if time <= at {
                return self.decode(&stored);
            }
        }
        let mut to = history_key(&raw_key, at);
        to.push(0);
        let versions = self.store.range(&history_prefix(&raw_key), Some(&to))?;
        match versions.last() {
            Some((_, stored)) => self.decode(stored),
            None => Ok(None),
        }
    }

    /// The latest value of `key` (`None` when deleted or never set).
    ///
    /// # Errors
    /// Fails on a storage or decoding error.
    pub fn get(&self, key: &K) -> Result<Option<V>, StateError> {
        match self.latest_raw(&self.encode_key(key)?)? {
            Some((_, stored)) => self.decode(&stored),
            None => Ok(None),
        }
    }
}
