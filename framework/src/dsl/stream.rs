//! Streams: stateless operators, fan-out, merge, branches, repartitioning and sinks.

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::processors::{RecordFn, Stateless};
use super::{BranchedKStream, KGroupedStream, Shared};
use crate::processor::{Data, Processor};
use crate::record::Record;
use crate::serde::Serde;
use crate::topology::TopicRef;

/// A stream of records with keys `K` and values `V`.
///
/// Operators take `&self`: one stream can feed any number of them (each gets every record).
///
/// ```
/// use eddy::prelude::*;
///
/// let builder = StreamsBuilder::new();
/// let words = builder
///     .stream("lines", UnitSerde, StringSerde)
///     .flat_map_values(|line: String| line.split(' ').map(str::to_owned).collect::<Vec<_>>());
/// words.to("echo", UnitSerde, StringSerde);
/// let by_word = words.select_key(|_: &(), w: &String| w.clone());
/// by_word.group_by_key(StringSerde, StringSerde).count("counts");
/// by_word
///     .group_by_key(StringSerde, StringSerde)
///     .reduce("longest", |a: String, b: String| if b.len() > a.len() { b } else { a });
/// assert!(builder.build().is_ok());
/// ```
pub struct KStream<K, V> {
    pub(super) state: Shared,
    pub(super) node: String,
    /// True once an operation may have changed keys: grouping then repartitions.
    pub(super) key_changed: bool,
    _types: PhantomData<fn(K, V)>,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            state: Rc::clone(&self.state),
            node: self.node.clone(),
            key_changed: self.key_changed,
            _types: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for KStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KStream").field("node", &self.node).finish()
    }
}

impl<K, V> KStream<K, V> {
    pub(super) fn new(state: Shared, node: String, key_changed: bool) -> Self {
        KStream {
            state,
            node,
            key_changed,
            _types: PhantomData,
        }
    }

    /// The name of the operator this stream comes out of.
    pub fn node(&self) -> &str {
        &self.node
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    fn stateless<K2: Data, V2: Data>(
        &self,
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
        KStream::new(
            Rc::clone(&self.state),
            name,
            self.key_changed || key_changed,
        )
    }

    /// Names the operator this stream comes out of (instead of its generated name), for
    /// readable topology descriptions and names that stay put when operators are added
    /// before it. A name used twice fails the build.
    #[must_use]
    pub fn named(&self, name: &str) -> KStream<K, V> {
        self.state
            .borrow_mut()
            .builder
            .rename_node(&self.node, name);
        KStream::new(Rc::clone(&self.state), name.to_owned(), self.key_changed)
    }

    /// Transforms key and value.
    pub fn map<K2: Data, V2: Data>(
        &self,
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
        &self,
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
        &self,
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
        &self,
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
        &self,
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
        &self,
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
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
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
        &self,
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
        KStream::new(Rc::clone(&self.state), name.to_owned(), true)
    }

    /// Writes the stream to `topic`, partitioned by the murmur2 hash of the key bytes.
    pub fn to(&self, topic: &str, key_serde: impl Serde<K>, value_serde: impl Serde<V>) {
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
        &self,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> KGroupedStream<K, V> {
        KGroupedStream::new(self.clone(), Arc::new(key_serde), Arc::new(value_serde))
    }

    /// Calls `f` for each record; nothing flows on (a terminal operator, for side effects
    /// such as metrics; output that must be exactly-once goes through [`to`](Self::to)).
    pub fn foreach(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) {
        self.stateless(
            "KSTREAM-FOREACH",
            false,
            Arc::new(move |r: Record<K, V>| -> Vec<Record<(), ()>> {
                f(&r.key, &r.value);
                Vec::new()
            }),
        );
    }

    /// One stream of the records of both streams, each as it arrives. Both must come from
    /// the same sub-topology's partitions (co-partitioned inputs).
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let name = {
            let mut state = self.state.borrow_mut();
            let name = state.name("KSTREAM-MERGE");
            let pass: RecordFn<K, V, K, V> = Arc::new(|r| vec![r]);
            state.builder.add_processor(
                &name,
                move || Stateless {
                    f: Arc::clone(&pass),
                },
                &[&self.node, &other.node],
                &[],
            );
            name
        };
        KStream::new(
            Rc::clone(&self.state),
            name,
            self.key_changed || other.key_changed,
        )
    }

    /// Sends the stream through internal topic `<application.id>-<name>-repartition`,
    /// partitioned by the current key, and reads it back: every record of one key reaches
    /// the same task downstream. `name` keys the topic, so keep it stable across versions.
    pub fn repartition(
        &self,
        name: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> KStream<K, V> {
        let key_serde: Arc<dyn Serde<K>> = Arc::new(key_serde);
        let value_serde: Arc<dyn Serde<V>> = Arc::new(value_serde);
        let source = through_repartition(
            &mut self.state.borrow_mut().builder,
            name,
            &self.node,
            key_serde,
            value_serde,
        );
        KStream::new(Rc::clone(&self.state), source, false)
    }

    /// Splits the stream by predicates: each record goes to the first branch whose predicate
    /// holds (or to the default branch, or nowhere). `name` prefixes the branches' names.
    ///
    /// ```
    /// use eddy::prelude::*;
    ///
    /// let builder = StreamsBuilder::new();
    /// let branches = builder
    ///     .stream("amounts", StringSerde, I64Serde)
    ///     .split("by-size")
    ///     .branch("large", |_: &String, n: &i64| *n >= 1_000)
    ///     .branch("negative", |_: &String, n: &i64| *n < 0)
    ///     .default_branch("other");
    /// branches["large"].to("large-amounts", StringSerde, I64Serde);
    /// branches["other"].to("other-amounts", StringSerde, I64Serde);
    /// assert!(builder.build().is_ok());
    /// ```
    pub fn split(&self, name: &str) -> BranchedKStream<K, V> {
        BranchedKStream::new(self.clone(), name)
    }
}

/// Adds a sink to internal topic `<name>-repartition` fed by `parent` and a source reading it
/// back; returns the source's name.
pub(super) fn through_repartition<K: Data, V: Data>(
    builder: &mut crate::topology::TopologyBuilder,
    name: &str,
    parent: &str,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
) -> String {
    let topic = format!("{name}-repartition");
    let sink = format!("{name}-repartition-sink");
    let source = format!("{name}-repartition-source");
    builder.add_sink(
        &sink,
        TopicRef::internal(&topic),
        Arc::clone(&key_serde),
        Arc::clone(&value_serde),
        &[parent],
    );
    builder.add_source(&source, TopicRef::internal(&topic), key_serde, value_serde);
    source
}
