//! Keyed state: store definitions, typed store views, and the transactional overlay over
//! RocksDB or memory.

mod builder;
mod codec;
mod global;
mod memory;
mod reader;
mod session;
mod task_stores;
mod transactional;
mod versioned;
mod window;

use std::marker::PhantomData;

pub use builder::{StoreBuilder, StoreKind};
pub(crate) use builder::{WindowLayout, WindowRetention};
pub use global::GlobalStore;
pub(crate) use memory::RocksMemory;
pub(crate) use reader::StoreReader;
pub use session::{SessionEntry, SessionStore};
pub(crate) use task_stores::TaskStores;
pub(crate) use transactional::TransactionalStore;
pub use versioned::{RawVersion, VersionedStore};
pub use window::{WindowProgress, WindowStore};

use crate::serde::{Serde, SerdeError};

/// A state store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// RocksDB reported an error.
    #[error("RocksDB error in {path}: {source}")]
    RocksDb {
        /// Directory of the database.
        path: String,
        /// RocksDB's error.
        #[source]
        source: rocksdb::Error,
    },
    /// A column family a store needs is missing from its database.
    #[error("RocksDB error in {path}: {what} missing")]
    MissingColumnFamily {
        /// Directory of the database.
        path: String,
        /// Which column family (`meta column family`, ``column family `counts` ``).
        what: String,
    },
    /// A key or value could not be encoded or decoded.
    #[error("state store `{store}`: {source}")]
    Serde {
        /// The store.
        store: String,
        /// What was wrong.
        #[source]
        source: SerdeError,
    },
    /// The store was asked for with other key or value types than it was registered with.
    #[error("state store `{store}` holds ({expected}) but was asked for ({requested})")]
    TypeMismatch {
        /// The store.
        store: String,
        /// Types it was registered with.
        expected: String,
        /// Types requested.
        requested: String,
    },
    /// Another open handle (a task closing on another thread) holds the database's lock.
    #[error("RocksDB database {path} is locked by another open handle")]
    Locked {
        /// Directory of the database.
        path: String,
    },
    /// The store is a key-value store where a window store was asked for, or the reverse.
    #[error("state store `{store}` is a {actual} store, not a {requested} store")]
    WrongShape {
        /// The store.
        store: String,
        /// `key-value`, `window`, `session` or `versioned`.
        actual: &'static str,
        /// What was asked for.
        requested: &'static str,
    },
    /// No store of that name exists in the task.
    #[error("no state store named `{0}`")]
    Unknown(String),
    /// The task that held the store closed (it moved to another thread or instance).
    #[error("state store `{0}` was closed: its task moved")]
    Closed(String),
    /// The state directory could not be used.
    #[error("state directory {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// RocksDB stores were opened without a state directory.
    #[error("state directory : RocksDB stores need a state directory")]
    NoStateDir,
}

impl StateError {
    /// True when the database is held by another handle in this process (retry shortly).
    pub fn is_lock_held(&self) -> bool {
        matches!(self, StateError::Locked { .. })
    }
}

/// A typed view of a key-value store for the duration of one processor call.
///
/// Reads see the task's own uncommitted writes (read-your-writes); writes become durable in
/// RocksDB only after the Kafka transaction that carries their changelog records commits.
pub struct KeyValueStore<'a, K, V> {
    store: &'a mut TransactionalStore,
    key_serde: &'a dyn Serde<K>,
    value_serde: &'a dyn Serde<V>,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> std::fmt::Debug for KeyValueStore<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyValueStore")
            .field("name", &self.store.name())
            .finish_non_exhaustive()
    }
}

impl<'a, K: 'static, V: 'static> KeyValueStore<'a, K, V> {
    pub(crate) fn new(
        store: &'a mut TransactionalStore,
        key_serde: &'a dyn Serde<K>,
        value_serde: &'a dyn Serde<V>,
    ) -> Self {
        KeyValueStore {
            store,
            key_serde,
            value_serde,
            _types: PhantomData,
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        self.store.name()
    }

    fn encode_key(&self, key: &K) -> Result<Vec<u8>, StateError> {
        self.key_serde
            .serialize(key)
            .and_then(|k| k.ok_or_else(|| SerdeError::new("a store key may not be null")))
            .map_err(|source| self.serde_error(source))
    }

    fn serde_error(&self, source: SerdeError) -> StateError {
        StateError::Serde {
            store: self.store.name().to_owned(),
            source,
        }
    }

    /// The value stored under `key`.
    ///
    /// # Errors
    /// Fails on a storage or decoding error.
    pub fn get(&self, key: &K) -> Result<Option<V>, StateError> {
        let key = self.encode_key(key)?;
        match self.store.get(&key)? {
            Some(bytes) => self
                .value_serde
                .deserialize(Some(&bytes))
                .map(Some)
                .map_err(|source| self.serde_error(source)),
            None => Ok(None),
        }
    }

    /// Stores `value` under `key`.
    ///
    /// # Errors
    /// Fails on an encoding error.
    pub fn put(&mut self, key: &K, value: &V) -> Result<(), StateError> {
        let key = self.encode_key(key)?;
        let value = self
            .value_serde
            .serialize(value)
            .map_err(|source| self.serde_error(source))?
            .ok_or_else(|| {
                self.serde_error(SerdeError::new(
                    "a stored value may not be null; use delete",
                ))
            })?;
        self.store.put(key, Some(value));
        Ok(())
    }

    /// Removes `key`.
    ///
    /// # Errors
    /// Fails on an encoding error.
    pub fn delete(&mut self, key: &K) -> Result<(), StateError> {
        let key = self.encode_key(key)?;
        self.store.put(key, None);
        Ok(())
    }

    /// Every entry, in key byte order, including uncommitted writes.
    ///
    /// # Errors
    /// Fails on a storage or decoding error.
    pub fn all(&self) -> Result<Vec<(K, V)>, StateError> {
        self.decode_entries(self.store.entries()?)
    }

    /// The entries whose encoded key begins with the bytes of `prefix` (encoded with
    /// `prefix_serde`), in key byte order, including uncommitted writes. Meant for composite
    /// keys whose serde writes the part scanned by first, in the same encoding.
    ///
    /// # Errors
    /// Fails on a storage, encoding or decoding error.
    pub fn prefix_scan<P: 'static>(
        &self,
        prefix: &P,
        prefix_serde: &dyn Serde<P>,
    ) -> Result<Vec<(K, V)>, StateError> {
        let from = prefix_serde
            .serialize(prefix)
            .map_err(|source| self.serde_error(source))?
            .unwrap_or_default();
        let to = prefix_successor(&from);
        self.decode_entries(self.store.range(&from, to.as_deref())?)
    }

    fn decode_entries(&self, entries: transactional::Entries) -> Result<Vec<(K, V)>, StateError> {
        entries
            .into_iter()
            .map(|(k, v)| {
                let key = self.key_serde.deserialize(Some(&k));
                let value = self.value_serde.deserialize(Some(&v));
                match (key, value) {
                    (Ok(k), Ok(v)) => Ok((k, v)),
                    (Err(e), _) | (_, Err(e)) => Err(self.serde_error(e)),
                }
            })
            .collect()
    }
}

/// The first key after every key that begins with `prefix`; `None` when there is none
/// (an empty prefix or one of `0xff` bytes only).
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut next = prefix.to_vec();
    while let Some(last) = next.pop() {
        if last < u8::MAX {
            next.push(last + 1);
            return Some(next);
        }
    }
    None
}

#[cfg(test)]
mod prefix_tests {
    use super::prefix_successor;

    #[test]
    fn the_successor_of_a_prefix_bounds_exactly_the_keys_that_begin_with_it() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[1, 0xff, 0xff]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xff]), None);
        assert_eq!(prefix_successor(&[]), None);
    }
}
