//! Store definitions: name, kind, serdes and changelogging, as registered in a topology.

use std::any::Any;
use std::sync::Arc;

use crate::serde::Serde;
use crate::topology::erased::TypeInfo;

/// Where a store keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// RocksDB on local disk; survives restarts, restores only the changelog tail.
    RocksDb,
    /// A map in memory; restored from the whole changelog on every start.
    InMemory,
}

/// Defines a named key-value store for a topology.
#[derive(Clone)]
pub struct StoreBuilder {
    pub(crate) name: String,
    pub(crate) kind: StoreKind,
    pub(crate) changelog: bool,
    pub(crate) key_type: TypeInfo,
    pub(crate) value_type: TypeInfo,
    pub(crate) key_format: String,
    pub(crate) value_format: String,
    /// Holds an `Arc<dyn Serde<K>>`.
    pub(crate) key_serde: Arc<dyn Any + Send + Sync>,
    /// Holds an `Arc<dyn Serde<V>>`.
    pub(crate) value_serde: Arc<dyn Any + Send + Sync>,
}

impl std::fmt::Debug for StoreBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBuilder")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("changelog", &self.changelog)
            .field("key", &self.key_format)
            .field("value", &self.value_format)
            .finish()
    }
}

impl StoreBuilder {
    fn new<K: 'static, V: 'static>(
        name: &str,
        kind: StoreKind,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> Self {
        let key_format = key_serde.format();
        let value_format = value_serde.format();
        let key_serde: Arc<dyn Serde<K>> = Arc::new(key_serde);
        let value_serde: Arc<dyn Serde<V>> = Arc::new(value_serde);
        StoreBuilder {
            name: name.to_owned(),
            kind,
            changelog: true,
            key_type: TypeInfo::of::<K>(),
            value_type: TypeInfo::of::<V>(),
            key_format,
            value_format,
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
        }
    }

    /// A RocksDB-backed store named `name` (the name keys its changelog topic and snapshots,
    /// so keep it stable across versions of the app).
    pub fn rocksdb<K: 'static, V: 'static>(
        name: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> Self {
        Self::new(name, StoreKind::RocksDb, key_serde, value_serde)
    }

    /// An in-memory store named `name`.
    pub fn in_memory<K: 'static, V: 'static>(
        name: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> Self {
        Self::new(name, StoreKind::InMemory, key_serde, value_serde)
    }

    /// Turns off the changelog topic: the store is then lost when its task moves or its disk
    /// does. Only for caches that can be rebuilt.
    #[must_use]
    pub fn without_changelog(mut self) -> Self {
        self.changelog = false;
        self
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store's kind.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// The store as a snapshot records it, with the changelog position of its data.
    pub(crate) fn identity(
        &self,
        changelog_position: Option<i64>,
    ) -> crate::snapshot::StoreIdentity {
        crate::snapshot::StoreIdentity {
            name: self.name.clone(),
            kind: match self.kind {
                StoreKind::RocksDb => "rocksdb",
                StoreKind::InMemory => "in_memory",
            }
            .to_owned(),
            key_format: self.key_format.clone(),
            value_format: self.value_format.clone(),
            changelog_position,
        }
    }
}
