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

/// How a windowed store lays out its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowLayout {
    /// Fixed-size time windows, by window start ([`WindowStore`](super::WindowStore)).
    Time,
    /// Session windows, by key and session end ([`SessionStore`](super::SessionStore)).
    Session,
    /// Versions of each key's value ([`VersionedStore`](super::VersionedStore)); the
    /// retention is the history kept.
    Versioned,
}

impl WindowLayout {
    /// What the layout puts before the key serde's format in the store's key format.
    fn key_format_prefix(self) -> &'static str {
        match self {
            WindowLayout::Time => "window:",
            WindowLayout::Session => "session:",
            WindowLayout::Versioned => "versioned:",
        }
    }
}

/// How long a window store keeps windows, and the time span its expiry drops at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WindowRetention {
    /// The key layout.
    pub layout: WindowLayout,
    /// Windows whose start is older than the operator's time minus this are dropped.
    pub retention_ms: i64,
    /// Expiry drops whole segments of window starts this long, each with one range delete.
    pub segment_ms: i64,
}

/// Margin a windowed changelog keeps records beyond the store's retention (as Kafka Streams'
/// `windowstore.changelog.additional.retention.ms`), so a restore finds every live window.
const CHANGELOG_EXTRA_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// Defines a named key-value store for a topology.
#[derive(Clone)]
pub struct StoreBuilder {
    pub(crate) name: String,
    pub(crate) kind: StoreKind,
    pub(crate) changelog: bool,
    /// Set for window stores (keys laid out by window start, expired by range deletes).
    pub(crate) window: Option<WindowRetention>,
    pub(crate) key_type: TypeInfo,
    pub(crate) value_type: TypeInfo,
    pub(crate) key_format: String,
    pub(crate) value_format: String,
    /// Holds an `Arc<dyn Serde<K>>`.
    pub(crate) key_serde: Arc<dyn Any + Send + Sync>,
    /// Holds an `Arc<dyn Serde<V>>`.
    pub(crate) value_serde: Arc<dyn Any + Send + Sync>,
    /// The key serde's [`Serde::reads_format`].
    key_reads: FormatCheck,
    /// The value serde's [`Serde::reads_format`].
    value_reads: FormatCheck,
}

/// A serde's [`Serde::reads_format`], kept without its types.
type FormatCheck = Arc<dyn Fn(&str) -> Option<Result<(), String>> + Send + Sync>;

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
        let (k, v) = (Arc::clone(&key_serde), Arc::clone(&value_serde));
        StoreBuilder {
            key_reads: Arc::new(move |written: &str| k.reads_format(written)),
            value_reads: Arc::new(move |written: &str| v.reads_format(written)),
            name: name.to_owned(),
            kind,
            changelog: true,
            window: None,
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

    /// A window store named `name`: values per key and window start, kept for `retention`
    /// of the operator's time past each window's start, then dropped a segment at a time.
    /// Its changelog is compacted and also deleted by time (retention plus one day).
    pub(crate) fn window<K: 'static, V: 'static>(
        name: &str,
        kind: StoreKind,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        retention_ms: i64,
    ) -> Self {
        let mut store = Self::new(name, kind, key_serde, value_serde);
        store.key_format = format!(
            "{}{}",
            WindowLayout::Time.key_format_prefix(),
            store.key_format
        );
        // Segments of half the retention (at least a minute), as Kafka Streams sizes them:
        // expiry then lags retention by at most one segment.
        let segment_ms = (retention_ms / 2).max(60_000);
        store.window = Some(WindowRetention {
            layout: WindowLayout::Time,
            retention_ms,
            segment_ms,
        });
        store
    }

    /// A session store named `name`: values per key and session, kept for `retention` of
    /// the operator's time past each session's end, then dropped a segment at a time.
    pub(crate) fn session<K: 'static, V: 'static>(
        name: &str,
        kind: StoreKind,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        retention_ms: i64,
    ) -> Self {
        let mut store = Self::window(name, kind, key_serde, value_serde, retention_ms);
        store.key_format = store.key_format.replacen(
            WindowLayout::Time.key_format_prefix(),
            WindowLayout::Session.key_format_prefix(),
            1,
        );
        if let Some(w) = &mut store.window {
            w.layout = WindowLayout::Session;
        }
        store
    }

    /// A versioned key-value store named `name`: each key's values with the times they
    /// became valid, older versions kept for `history_ms` behind the newest.
    pub(crate) fn versioned<K: 'static, V: 'static>(
        name: &str,
        kind: StoreKind,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        history_ms: i64,
    ) -> Self {
        let mut store = Self::new(name, kind, key_serde, value_serde);
        store.key_format = format!(
            "{}{}",
            WindowLayout::Versioned.key_format_prefix(),
            store.key_format
        );
        store.window = Some(WindowRetention {
            layout: WindowLayout::Versioned,
            retention_ms: history_ms,
            segment_ms: 1,
        });
        store
    }

    /// The key serde, when keys are `K`.
    pub(crate) fn key_serde_as<K: 'static>(&self) -> Option<&Arc<dyn Serde<K>>> {
        self.key_serde.downcast_ref()
    }

    /// The value serde, when values are `V`.
    pub(crate) fn value_serde_as<V: 'static>(&self) -> Option<&Arc<dyn Serde<V>>> {
        self.value_serde.downcast_ref()
    }

    /// Whether this store's key (`key`) or value serde reads data a serde of format
    /// `written` wrote (see [`Serde::reads_format`]); the layout prefix of windowed keys is
    /// compared, not handed to the serde.
    pub(crate) fn reads_format(&self, key: bool, written: &str) -> Option<Result<(), String>> {
        if !key {
            return (self.value_reads)(written);
        }
        let prefix = self.window.map_or("", |w| w.layout.key_format_prefix());
        (self.key_reads)(written.strip_prefix(prefix)?)
    }

    /// Topic configs of the store's changelog: compacted; a window store's also deletes
    /// records older than its retention plus a day, since expired windows are never read.
    pub(crate) fn changelog_configs(&self) -> Vec<(&'static str, String)> {
        match self.window {
            // A versioned store's latest versions never expire: compacted only.
            None
            | Some(WindowRetention {
                layout: WindowLayout::Versioned,
                ..
            }) => vec![("cleanup.policy", "compact".to_owned())],
            Some(w) => vec![
                ("cleanup.policy", "compact,delete".to_owned()),
                (
                    "retention.ms",
                    w.retention_ms
                        .saturating_add(CHANGELOG_EXTRA_RETENTION_MS)
                        .to_string(),
                ),
            ],
        }
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
