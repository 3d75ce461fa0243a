//! Global stores: a table every instance holds whole (every partition of its topic), shared
//! by all tasks of the instance and fed by the instance's global-table reader.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

/// The latest value per key of a topic, held in memory as bytes. Meant for small reference
/// data read by every task (a stream joins it by any key it derives, with no
/// co-partitioning); it is read from the topic's beginning when the instance starts.
#[derive(Debug)]
pub struct GlobalStore {
    name: String,
    topic: String,
    entries: RwLock<HashMap<Vec<u8>, Vec<u8>>>,
}

impl GlobalStore {
    /// An empty store `name` of `topic`.
    pub(crate) fn new(name: &str, topic: &str) -> Self {
        GlobalStore {
            name: name.to_owned(),
            topic: topic.to_owned(),
            entries: RwLock::default(),
        }
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The topic it holds.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The value of `key`'s bytes, if any.
    pub(crate) fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Applies one record of the topic: a value replaces, a null (tombstone) deletes. A
    /// record without a key cannot be looked up and is ignored (the caller counts it).
    pub(crate) fn apply(&self, key: &[u8], value: Option<&[u8]>) {
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
        match value {
            Some(value) => {
                entries.insert(key.to_vec(), value.to_vec());
            }
            None => {
                entries.remove(key);
            }
        }
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// True when it holds no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_replace_and_tombstones_delete() {
        let store = GlobalStore::new("users", "users-topic");
        store.apply(b"u", Some(b"eu"));
        store.apply(b"u", Some(b"us"));
        store.apply(b"v", Some(b"eu"));
        assert_eq!(store.get(b"u").as_deref(), Some(&b"us"[..]));
        store.apply(b"u", None);
        assert_eq!(store.get(b"u"), None);
        assert_eq!(store.len(), 1);
    }
}
