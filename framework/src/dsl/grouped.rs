//! Grouped streams and their aggregations (count, reduce, aggregate) into keyed stores.

use std::rc::Rc;
use std::sync::Arc;

use super::processors::{aggregating, counting, reducing, Aggregate, Folding};
use super::session_windowed::SessionWindowedKStream;
use super::sliding_windowed::SlidingWindowedKStream;
use super::stream::through_repartition;
use super::windowed::TimeWindowedKStream;
use super::windows::{SessionWindows, SlidingWindows, TimeWindows, Windowed};
use super::{KStream, KTable};
use crate::processor::{Data, Processor};
use crate::serde::{I64Serde, Serde};
use crate::state::{StoreBuilder, StoreKind};
use crate::topology::TopologyBuilder;

/// A stream grouped by key, ready to aggregate (any number of times).
pub struct KGroupedStream<K, V> {
    pub(super) stream: KStream<K, V>,
    pub(super) key_serde: Arc<dyn Serde<K>>,
    pub(super) value_serde: Arc<dyn Serde<V>>,
    pub(super) kind: StoreKind,
}

impl<K, V> Clone for KGroupedStream<K, V> {
    fn clone(&self) -> Self {
        KGroupedStream {
            stream: self.stream.clone(),
            key_serde: Arc::clone(&self.key_serde),
            value_serde: Arc::clone(&self.value_serde),
            kind: self.kind,
        }
    }
}

impl<K, V> std::fmt::Debug for KGroupedStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KGroupedStream")
            .field("node", &self.stream.node)
            .finish()
    }
}

impl<K, V> KGroupedStream<K, V> {
    pub(super) fn new(
        stream: KStream<K, V>,
        key_serde: Arc<dyn Serde<K>>,
        value_serde: Arc<dyn Serde<V>>,
    ) -> Self {
        KGroupedStream {
            stream,
            key_serde,
            value_serde,
            kind: StoreKind::RocksDb,
        }
    }
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Keeps the aggregation's store in memory instead of RocksDB.
    #[must_use]
    pub fn in_memory(mut self) -> Self {
        self.kind = StoreKind::InMemory;
        self
    }

    /// Counts records per key into store `store`.
    pub fn count(&self, store: &str) -> KTable<K, i64> {
        self.aggregate_inner(store, counting(), I64Serde)
    }

    /// Combines values per key with `reduce` into store `store`.
    pub fn reduce(
        &self,
        store: &str,
        reduce: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> KTable<K, V> {
        let value_serde = Arc::clone(&self.value_serde);
        self.aggregate_inner(store, reducing(reduce), value_serde)
    }

    /// Folds values per key into an aggregate of type `A`, starting from `init`, stored in
    /// store `store` with `aggregate_serde`.
    pub fn aggregate<A: Data>(
        &self,
        store: &str,
        init: impl Fn() -> A + Send + Sync + 'static,
        fold: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        aggregate_serde: impl Serde<A>,
    ) -> KTable<K, A> {
        self.aggregate_inner(store, aggregating(init, fold), aggregate_serde)
    }

    /// Windows the grouped records by time for windowed aggregations.
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream::new(self.clone(), windows)
    }

    /// Groups records into sliding windows (every set of a key's records at most the window
    /// size apart) for sliding-window aggregations.
    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> SlidingWindowedKStream<K, V> {
        SlidingWindowedKStream::new(self.clone(), windows)
    }

    /// Cuts the grouped records into sessions for session-windowed aggregations.
    pub fn windowed_by_sessions(&self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream::new(self.clone(), windows)
    }

    /// The node an aggregation named `store` reads from: the stream itself, or a
    /// repartition topic named after the store when keys may have changed.
    pub(super) fn aggregation_input(&self, builder: &mut TopologyBuilder, store: &str) -> String {
        if !self.stream.key_changed {
            return self.stream.node.clone();
        }
        through_repartition(
            builder,
            store,
            &self.stream.node,
            Arc::clone(&self.key_serde),
            Arc::clone(&self.value_serde),
        )
    }

    /// Adds windowed aggregation `<store>-<kind>` reading this grouped stream (repartitioned
    /// when keys changed) into `store_def`, its records beyond grace sent to `late_topic`
    /// through a side sink; `processor` makes each task's processor from the late sink's
    /// name.
    pub(super) fn windowed_operator<A: Data, P>(
        &self,
        store_def: StoreBuilder,
        kind: &str,
        late_topic: Option<&String>,
        processor: impl Fn(Option<String>) -> P + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, A>
    where
        P: Processor<KeyIn = K, ValueIn = V, KeyOut = Windowed<K>, ValueOut = Option<A>>,
    {
        self.windowed_operator_with(vec![store_def], kind, late_topic, processor)
    }

    /// As [`windowed_operator`](Self::windowed_operator), with the operator's further stores
    /// after the first (which names it).
    pub(super) fn windowed_operator_with<A: Data, P>(
        &self,
        store_defs: Vec<StoreBuilder>,
        kind: &str,
        late_topic: Option<&String>,
        processor: impl Fn(Option<String>) -> P + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, A>
    where
        P: Processor<KeyIn = K, ValueIn = V, KeyOut = Windowed<K>, ValueOut = Option<A>>,
    {
        let shared = &self.stream.state;
        let mut state = shared.borrow_mut();
        let names: Vec<String> = store_defs.iter().map(|s| s.name().to_owned()).collect();
        let store = names.first().cloned().unwrap_or_default();
        let parent = self.aggregation_input(&mut state.builder, &store);
        for def in store_defs {
            state.builder.add_store(def);
        }
        let name = format!("{store}-{kind}");
        let late_sink = late_topic.map(|_| format!("{store}-late-sink"));
        let sink = late_sink.clone();
        let store_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        state.builder.add_processor(
            &name,
            move || processor(sink.clone()),
            &[&parent],
            &store_refs,
        );
        if let (Some(sink), Some(topic)) = (&late_sink, late_topic) {
            state.builder.add_side_sink(
                sink,
                topic.as_str(),
                Arc::clone(&self.key_serde),
                Arc::clone(&self.value_serde),
                &name,
            );
        }
        drop(state);
        KTable::new(KStream::new(Rc::clone(shared), name, false))
    }

    fn aggregate_inner<A: Data>(
        &self,
        store: &str,
        (first, fold): Folding<K, V, A>,
        aggregate_serde: impl Serde<A>,
    ) -> KTable<K, A> {
        let stream = &self.stream;
        let mut state = stream.state.borrow_mut();
        let parent = self.aggregation_input(&mut state.builder, store);
        let store_def = match self.kind {
            StoreKind::RocksDb => {
                StoreBuilder::rocksdb(store, Arc::clone(&self.key_serde), aggregate_serde)
            }
            StoreKind::InMemory => {
                StoreBuilder::in_memory(store, Arc::clone(&self.key_serde), aggregate_serde)
            }
        };
        state.builder.add_store(store_def);
        let name = format!("{store}-aggregate");
        let store_name = store.to_owned();
        state.builder.add_processor(
            &name,
            move || Aggregate {
                store: store_name.clone(),
                first: Arc::clone(&first),
                fold: Arc::clone(&fold),
            },
            &[&parent],
            &[store],
        );
        drop(state);
        KTable::materialized(KStream::new(Rc::clone(&stream.state), name, false), store)
    }
}
