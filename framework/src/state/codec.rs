//! What every typed store view shares: encoding keys and values with the store's serdes,
//! errors that name the store, and windowed operators' progress records.

use super::transactional::TransactionalStore;
use super::window::{progress_key, WindowProgress};
use super::StateError;
use crate::serde::{Serde, SerdeError};

/// A typed view over one store's bytes; the provided methods encode and decode with its
/// serdes and name the store in every error.
pub(crate) trait StoreCodec<K: 'static, V: 'static> {
    /// The store.
    fn raw(&self) -> &TransactionalStore;
    /// The key serde.
    fn key_serde(&self) -> &dyn Serde<K>;
    /// The value serde.
    fn value_serde(&self) -> &dyn Serde<V>;

    /// A serde failure of this store.
    fn serde_error(&self, source: SerdeError) -> StateError {
        StateError::Serde {
            store: self.raw().name().to_owned(),
            source,
        }
    }

    /// The bytes of `key` (never null).
    fn encode_key(&self, key: &K) -> Result<Vec<u8>, StateError> {
        self.key_serde()
            .serialize(key)
            .and_then(|k| k.ok_or_else(|| SerdeError::new("a store key may not be null")))
            .map_err(|source| self.serde_error(source))
    }

    /// The bytes of `value` (never null: deletions are explicit).
    fn encode_value(&self, value: &V) -> Result<Vec<u8>, StateError> {
        self.value_serde()
            .serialize(value)
            .map_err(|source| self.serde_error(source))?
            .ok_or_else(|| {
                self.serde_error(SerdeError::new(
                    "a stored value may not be null; delete it instead",
                ))
            })
    }

    /// The key `bytes` encode.
    fn decode_key(&self, bytes: &[u8]) -> Result<K, StateError> {
        self.key_serde()
            .deserialize(Some(bytes))
            .map_err(|source| self.serde_error(source))
    }

    /// The value `bytes` encode.
    fn decode_value(&self, bytes: &[u8]) -> Result<V, StateError> {
        self.value_serde()
            .deserialize(Some(bytes))
            .map_err(|source| self.serde_error(source))
    }

    /// The operator progress recorded under `name` (the default before the first record).
    fn read_progress(&self, name: &str) -> Result<WindowProgress, StateError> {
        match self.raw().get(&progress_key(name))? {
            None => Ok(WindowProgress::default()),
            Some(bytes) => WindowProgress::decode(&bytes).ok_or_else(|| {
                self.serde_error(SerdeError::new(format!(
                    "progress record `{name}` has {} bytes, not 16",
                    bytes.len()
                )))
            }),
        }
    }
}

/// Records operator progress under `name` in `store`, committed with its windows.
pub(crate) fn write_progress(store: &mut TransactionalStore, name: &str, progress: WindowProgress) {
    store.put(progress_key(name), Some(progress.encode()));
}
