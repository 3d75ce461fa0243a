//! The high-level DSL: streams, grouping and aggregation over the same topology graph.

mod processors;

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use processors::{Aggregate, FirstFn, FoldFn, RecordFn, Stateless};

use crate::processor::{Data, Processor};
use crate::record::Record;
use crate::serde::{I64Serde, Serde};
use crate::state::StoreBuilder;
use crate::topology::{TopicRef, Topology, TopologyBuilder, TopologyError};

struct DslState {
    builder: TopologyBuilder,
    counter: usize,
}

impl DslState {
    fn name(&mut self, kind: &str) -> String {
        self.counter += 1;
        format!("{kind}-{:010}", self.counter)
    }
}

/// Builds a topology with the DSL.
///
/// ```
/// use eddy::dsl::StreamsBuilder;
/// use eddy::serde::{StringSerde, UnitSerde};
///
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("lines", UnitSerde, StringSerde)
///     .flat_map(|_, line: String| {
///         line.split_whitespace().map(|w| (w.to_lowercase(), ())).collect::<Vec<_>>()
///     })
///     .group_by_key(StringSerde, UnitSerde)
///     .count("counts")
///     .to_stream()
///     .map_values(|count: i64| count.to_string())
///     .to("word-counts", StringSerde, StringSerde);
/// let topology = builder.build()?;
/// assert_eq!(topology.sub_topologies().len(), 2);
/// # Ok::<(), eddy::topology::TopologyError>(())
/// ```
pub struct StreamsBuilder {
    state: Rc<RefCell<DslState>>,
}

impl std::fmt::Debug for StreamsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamsBuilder").finish_non_exhaustive()
    }
}

impl Default for StreamsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        StreamsBuilder {
            state: Rc::new(RefCell::new(DslState {
                builder: TopologyBuilder::new(),
                counter: 0,
            })),
        }
    }

    /// A stream of the records of `topic`.
    pub fn stream<K: Data, V: Data>(
        &self,
        topic: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> KStream<K, V> {
        let mut state = self.state.borrow_mut();
        let name = state.name("KSTREAM-SOURCE");
        state
            .builder
            .add_source(&name, topic, key_serde, value_serde);
        KStream {
            state: Rc::clone(&self.state),
            node: name,
            key_changed: false,
            _types: PhantomData,
        }
    }

    /// Registers a store for processors added with [`KStream::process`].
    pub fn add_store(&self, store: StoreBuilder) -> &Self {
        self.state.borrow_mut().builder.add_store(store);
        self
    }

    /// Validates and returns the topology.
    ///
    /// # Errors
    /// Lists every problem of the graph.
    pub fn build(self) -> Result<Topology, TopologyError> {
        match Rc::try_unwrap(self.state) {
            Ok(cell) => cell.into_inner().builder.build(),
            Err(shared) => {
                let mut state = shared.borrow_mut();
                std::mem::take(&mut state.builder).build()
            }
        }
    }
}

/// A stream of records with keys `K` and values `V`.
pub struct KStream<K, V> {
    state: Rc<RefCell<DslState>>,
    node: String,
    /// True once an operation may have changed keys: grouping then repartitions.
    key_changed: bool,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> std::fmt::Debug for KStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KStream").field("node", &self.node).finish()
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    fn stateless<K2: Data, V2: Data>(
        self,
        kind: &str,
        key_changed: bool,
        f: RecordFn<K, V, K2, V2>,
    ) -> KStream<K2, V2> {
        let name = {
            let mut state = self.state.borrow_mut();
            let name = state.name(kind);
            state.builder.add_processor(
                &name,
                move || Stateless { f: Arc::clone(&f) },
                &[&self.node],
                &[],
            );
            name
        };
        KStream {
            state: self.state,
            node: name,
            key_changed: self.key_changed || key_changed,
            _types: PhantomData,
        }
    }

    /// Transforms key and value.
    pub fn map<K2: Data, V2: Data>(
        self,
        f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        self.stateless(
            "KSTREAM-MAP",
            true,
            Arc::new(move |r: Record<K, V>| {
                let (k, v) = f(r.key, r.value);
                vec![Record {
                    key: k,
                    value: v,
                    timestamp: r.timestamp,
                    headers: r.headers,
                }]
            }),
        )
    }

    /// Transforms the value, keeping the key (no repartition needed).
    pub fn map_values<V2: Data>(
        self,
        f: impl Fn(V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.stateless(
            "KSTREAM-MAPVALUES",
            false,
            Arc::new(move |r: Record<K, V>| {
                let v = f(r.value);
                vec![Record {
                    key: r.key,
                    value: v,
                    timestamp: r.timestamp,
                    headers: r.headers,
                }]
            }),
        )
    }

    /// Keeps the records for which `predicate` holds.
    pub fn filter(
        self,
        predicate: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.stateless(
            "KSTREAM-FILTER",
            false,
            Arc::new(move |r: Record<K, V>| {
                if predicate(&r.key, &r.value) {
                    vec![r]
                } else {
                    Vec::new()
                }
            }),
        )
    }

    /// Turns each record into zero or more records with new keys and values.
    pub fn flat_map<K2: Data, V2: Data, I>(
        self,
        f: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        self.stateless(
            "KSTREAM-FLATMAP",
            true,
            Arc::new(move |r: Record<K, V>| {
                let (ts, headers) = (r.timestamp, r.headers);
                f(r.key, r.value)
                    .into_iter()
                    .map(|(k, v)| Record {
                        key: k,
                        value: v,
                        timestamp: ts,
                        headers: headers.clone(),
                    })
                    .collect()
            }),
        )
    }

    /// Turns each value into zero or more values under the same key.
    pub fn flat_map_values<V2: Data, I>(
        self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        self.stateless(
            "KSTREAM-FLATMAPVALUES",
            false,
            Arc::new(move |r: Record<K, V>| {
                let (key, ts, headers) = (r.key, r.timestamp, r.headers);
                f(r.value)
                    .into_iter()
                    .map(|v| Record {
                        key: key.clone(),
                        value: v,
                        timestamp: ts,
                        headers: headers.clone(),
                    })
                    .collect()
            }),
        )
    }

    /// Replaces the key; a later grouping repartitions by the new key.
    pub fn select_key<K2: Data>(
        self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KStream<K2, V> {
        self.stateless(
            "KSTREAM-KEY-SELECT",
            true,
            Arc::new(move |r: Record<K, V>| {
                let k = f(&r.key, &r.value);
                vec![r.with_key(k)]
            }),
        )
    }

    /// Calls `f` for each record and passes the record on unchanged.
    pub fn peek(self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        self.stateless(
            "KSTREAM-PEEK",
            false,
            Arc::new(move |r: Record<K, V>| {
                f(&r.key, &r.value);
                vec![r]
            }),
        )
    }

    /// Runs a custom [`Processor`] named `name`, connected to `stores` (register them with
    /// [`StreamsBuilder::add_store`]).
    pub fn process<P, F>(
        self,
        name: &str,
        supplier: F,
        stores: &[&str],
    ) -> KStream<P::KeyOut, P::ValueOut>
    where
        P: Processor<KeyIn = K, ValueIn = V>,
        F: Fn() -> P + Send + Sync + 'static,
    {
        self.state
            .borrow_mut()
            .builder
            .add_processor(name, supplier, &[&self.node], stores);
        KStream {
            state: self.state,
            node: name.to_owned(),
            key_changed: true,
            _types: PhantomData,
        }
    }

    /// Writes the stream to `topic`, partitioned by the murmur2 hash of the key bytes.
    pub fn to(self, topic: &str, key_serde: impl Serde<K>, value_serde: impl Serde<V>) {
        let mut state = self.state.borrow_mut();
        let name = state.name("KSTREAM-SINK");
        state
            .builder
            .add_sink(&name, topic, key_serde, value_serde, &[&self.node]);
    }

    /// Groups by the current key for aggregation. When an earlier operation may have changed
    /// keys, the aggregation first repartitions through an internal topic named after its
    /// store, so that every key is aggregated by exactly one task.
    pub fn group_by_key(
        self,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> KGroupedStream<K, V> {
        KGroupedStream {
            stream: self,
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
            kind: crate::state::StoreKind::RocksDb,
        }
    }
}

/// A stream grouped by key, ready to aggregate.
pub struct KGroupedStream<K, V> {
    stream: KStream<K, V>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
    kind: crate::state::StoreKind,
}

impl<K, V> std::fmt::Debug for KGroupedStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KGroupedStream")
            .field("node", &self.stream.node)
            .finish()
    }
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    /// Keeps the aggregation's store in memory instead of RocksDB.
    #[must_use]
    pub fn in_memory(mut self) -> Self {
        self.kind = crate::state::StoreKind::InMemory;
        self
    }

    /// Counts records per key into store `store`.
    pub fn count(self, store: &str) -> KTable<K, i64> {
        self.aggregate(store, || 0_i64, |_, _, n| n + 1, I64Serde)
    }

    /// Combines values per key with `reduce` into store `store`.
    pub fn reduce(
        self,
        store: &str,
        reduce: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> KTable<K, V> {
        let value_serde = Arc::clone(&self.value_serde);
        self.aggregate_inner(
            store,
            Arc::new(|_: &K, v: V| v),
            Arc::new(move |_: &K, v: V, acc: V| reduce(acc, v)),
            value_serde,
        )
    }

    /// Folds values per key into an aggregate of type `A`, starting from `init`, stored in
    /// store `store` with `aggregate_serde`.
    pub fn aggregate<A: Data>(
        self,
        store: &str,
        init: impl Fn() -> A + Send + Sync + 'static,
        fold: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        aggregate_serde: impl Serde<A>,
    ) -> KTable<K, A> {
        let fold: FoldFn<K, V, A> = Arc::new(fold);
        let fold_first = Arc::clone(&fold);
        self.aggregate_inner(
            store,
            Arc::new(move |k: &K, v: V| fold_first(k, v, init())),
            fold,
            aggregate_serde,
        )
    }

    fn aggregate_inner<A: Data>(
        self,
        store: &str,
        first: FirstFn<K, V, A>,
        fold: FoldFn<K, V, A>,
        aggregate_serde: impl Serde<A>,
    ) -> KTable<K, A> {
        let stream = self.stream;
        let mut state = stream.state.borrow_mut();
        let mut parent = stream.node.clone();
        if stream.key_changed {
            let topic = format!("{store}-repartition");
            let sink = format!("{store}-repartition-sink");
            let source = format!("{store}-repartition-source");
            state.builder.add_sink(
                &sink,
                TopicRef::internal(&topic),
                Arc::clone(&self.key_serde),
                Arc::clone(&self.value_serde),
                &[&parent],
            );
            state.builder.add_source(
                &source,
                TopicRef::internal(&topic),
                Arc::clone(&self.key_serde),
                Arc::clone(&self.value_serde),
            );
            parent = source;
        }
        let store_def = match self.kind {
            crate::state::StoreKind::RocksDb => {
                StoreBuilder::rocksdb(store, Arc::clone(&self.key_serde), aggregate_serde)
            }
            crate::state::StoreKind::InMemory => {
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
        KTable {
            stream: KStream {
                state: stream.state,
                node: name,
                key_changed: false,
                _types: PhantomData,
            },
        }
    }
}

/// A changelog stream of per-key values (the result of an aggregation).
pub struct KTable<K, V> {
    stream: KStream<K, V>,
}

impl<K, V> std::fmt::Debug for KTable<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KTable")
            .field("node", &self.stream.node)
            .finish()
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    /// Every update of the table as a stream: one record per input record aggregated.
    pub fn to_stream(self) -> KStream<K, V> {
        self.stream
    }
}
