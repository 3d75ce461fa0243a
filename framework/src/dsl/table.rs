//! Tables: the latest value per key, and the stream of their changes (updates and deletions).

use std::sync::Arc;

use super::KStream;
use crate::processor::{Data, ProcessError, Processor, ProcessorContext};
use crate::record::Record;

/// A table: the latest value per key. Its changes flow as records whose value is
/// `Some(new value)` for an update and `None` for a deletion (a tombstone in Kafka terms).
///
/// ```
/// use eddy::prelude::*;
///
/// let builder = StreamsBuilder::new();
/// let users = builder.table("users", StringSerde, StringSerde, "users-by-id");
/// users
///     .filter(|_, region: &String| region != "test")
///     .map_values(|region: String| region.to_uppercase())
///     .to_stream()
///     .to("user-regions", StringSerde, Nullable(StringSerde));
/// let mut driver = TopologyTestDriver::new(builder.build()?)?;
/// let alice = "alice".to_owned();
/// driver.pipe_input("users", &StringSerde, &StringSerde, &alice, &"eu".to_owned(), 1)?;
/// driver.pipe_input("users", &StringSerde, &StringSerde, &alice, &"test".to_owned(), 2)?;
/// driver.pipe_raw("users", Some(b"alice"), None, 3)?; // a tombstone deletes alice
/// let out = driver.read_output("user-regions", &StringSerde, &Nullable(StringSerde))?;
/// let values: Vec<Option<String>> = out.into_iter().map(|r| r.value).collect();
/// assert_eq!(values, vec![Some("EU".to_owned()), None, None]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KTable<K, V> {
    changes: KStream<K, Option<V>>,
    /// The key-value store holding the table, when it is materialized (a table from a topic
    /// or an aggregation); joins look it up.
    pub(super) store: Option<String>,
    /// True when `store` is versioned: lookups ask for the value as of a time.
    pub(super) versioned: bool,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            changes: self.changes.clone(),
            store: self.store.clone(),
            versioned: self.versioned,
        }
    }
}

impl<K, V> KTable<K, V> {
    pub(super) fn new(changes: KStream<K, Option<V>>) -> Self {
        KTable {
            changes,
            store: None,
            versioned: false,
        }
    }

    /// The table whose values key-value store `store` holds.
    pub(super) fn materialized(changes: KStream<K, Option<V>>, store: &str) -> Self {
        KTable {
            changes,
            store: Some(store.to_owned()),
            versioned: false,
        }
    }

    /// The table whose versions versioned store `store` holds.
    pub(super) fn versioned(changes: KStream<K, Option<V>>, store: &str) -> Self {
        KTable {
            changes,
            store: Some(store.to_owned()),
            versioned: true,
        }
    }
}

impl<K, V> std::fmt::Debug for KTable<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KTable")
            .field("node", &self.changes.node)
            .finish()
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    /// The table's changes as a stream: `Some(value)` for each update, `None` for each
    /// deletion. Write it with a [`Nullable`](crate::serde::Nullable) value serde so that
    /// deletions become tombstones.
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        self.changes.clone()
    }

    /// A table of `f` applied to every value (deletions stay deletions).
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(V) -> V2 + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        let f = Arc::new(f);
        KTable::new(
            self.changes
                .map_values(move |change: Option<V>| change.map(|v| f(v))),
        )
    }

    /// A table of the entries for which `keep` holds. An update that fails the predicate
    /// becomes a deletion of its key downstream (the key may have passed before).
    pub fn filter(&self, keep: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        let keep: Predicate<K, V> = Arc::new(keep);
        let name = {
            let mut state = self.changes.state.borrow_mut();
            let name = state.name("KTABLE-FILTER");
            let supplier_keep = Arc::clone(&keep);
            state.builder.add_processor(
                &name,
                move || FilterTable {
                    keep: Arc::clone(&supplier_keep),
                },
                &[&self.changes.node],
                &[],
            );
            name
        };
        KTable::new(KStream::new(
            std::rc::Rc::clone(&self.changes.state),
            name,
            self.changes.key_changed,
        ))
    }
}

type Predicate<K, V> = Arc<dyn Fn(&K, &V) -> bool + Send + Sync>;

/// Turns updates that fail a predicate into deletions.
struct FilterTable<K, V> {
    keep: Predicate<K, V>,
}

impl<K: Data, V: Data> Processor for FilterTable<K, V> {
    type KeyIn = K;
    type ValueIn = Option<V>;
    type KeyOut = K;
    type ValueOut = Option<V>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Option<V>>,
        record: Record<K, Option<V>>,
    ) -> Result<(), ProcessError> {
        let value = record.value.filter(|v| (self.keep)(&record.key, v));
        ctx.forward(Record {
            key: record.key,
            value,
            timestamp: record.timestamp,
            headers: record.headers,
        });
        Ok(())
    }
}
