//! The high-level DSL: streams, branches, grouping, aggregation and tables over the same
//! topology graph. Every stream and table can feed any number of downstream operators.

mod branch;
mod foreign_key_join;
mod foreign_key_processors;
mod global_table;
mod grouped;
mod idle;
mod internal_serdes;
mod join;
mod processors;
mod session_aggregate;
mod session_windowed;
mod sliding_aggregate;
mod sliding_windowed;
mod stream;
mod stream_join;
mod stream_join_processor;
mod table;
mod table_join;
mod versioned_join;
mod window_aggregate;
mod windowed;
mod windows;

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

pub use branch::{BranchedKStream, Branches};
#[cfg(test)]
pub(crate) use foreign_key_join::orders_by_customer;
pub use global_table::GlobalKTable;
pub use grouped::KGroupedStream;
pub use session_windowed::SessionWindowedKStream;
pub use sliding_windowed::SlidingWindowedKStream;
pub use stream::KStream;
pub use stream_join::{JoinWindows, StreamJoined};
pub use table::KTable;
pub use versioned_join::TableJoinGrace;
pub use window_aggregate::{LATE_OPERATOR_HEADER, LATE_OPERATOR_TIME_HEADER, LATE_WINDOW_HEADER};
pub use windowed::TimeWindowedKStream;
pub use windows::{
    Emit, SessionWindows, SlidingWindows, TimeWindows, Window, Windowed, WindowedSerde,
};

use crate::processor::Data;
use crate::serde::{Nullable, Serde};
use crate::state::StoreBuilder;
use crate::topology::{Topology, TopologyBuilder, TopologyError};

struct DslState {
    builder: TopologyBuilder,
    counter: usize,
}

impl DslState {
    /// Adds the source of a table read from `topic` (null values decode to `None`, a
    /// deletion) and marks the topic as a table; returns the source's name.
    fn table_source<K: Data, V: Data>(
        &mut self,
        topic: &str,
        key_serde: &Arc<dyn Serde<K>>,
        value_serde: &Arc<dyn Serde<V>>,
    ) -> String {
        let source = self.name("KTABLE-SOURCE");
        self.builder.add_source(
            &source,
            topic,
            Arc::clone(key_serde),
            Nullable(Arc::clone(value_serde)),
        );
        self.builder.mark_table_topic(topic);
        source
    }

    /// A fresh operator name: `kind` and a sequence number (stable as long as the topology
    /// is built in the same order; name operators whose names must outlive changes).
    fn name(&mut self, kind: &str) -> String {
        self.counter += 1;
        format!("{kind}-{:010}", self.counter)
    }
}

/// The builder every stream of one [`StreamsBuilder`] shares.
type Shared = Rc<RefCell<DslState>>;

/// Builds a topology with the DSL.
///
/// ```
/// use eddy::dsl::StreamsBuilder;
/// use eddy::serde::{Nullable, StringSerde, UnitSerde};
///
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("lines", UnitSerde, StringSerde)
///     .flat_map(|_, line: String| {
///         line.split_whitespace().map(|w| (w.to_lowercase(), ())).collect::<Vec<_>>()
///     })
///     .group_by_key(StringSerde, UnitSerde)
///     .count("counts")
///     .map_values(|count: i64| count.to_string())
///     .to_stream()
///     .to("word-counts", StringSerde, Nullable(StringSerde));
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
        KStream::new(Rc::clone(&self.state), name, false)
    }

    /// A stream of the records of `topic` whose event time `timestamps` makes from each
    /// record's key, value and Kafka timestamp (for example a time field of the value).
    /// A negative result marks the record invalid: it goes to `errors.deserialization`'s
    /// handler (fail, skip or dead-letter) like a record that cannot be decoded.
    ///
    /// ```
    /// use eddy::prelude::*;
    ///
    /// let builder = StreamsBuilder::new();
    /// builder
    ///     .stream_with_timestamps("clicks", StringSerde, I64Serde, |_: &String, at: &i64, _| *at)
    ///     .to("clicks-out", StringSerde, I64Serde);
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// driver.pipe_input("clicks", &StringSerde, &I64Serde, &"u".to_owned(), &1_700, 5)?;
    /// let out = driver.read_output("clicks-out", &StringSerde, &I64Serde)?;
    /// assert_eq!(out[0].timestamp, 1_700, "the value's time, not the Kafka timestamp");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stream_with_timestamps<K: Data, V: Data>(
        &self,
        topic: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        timestamps: impl Fn(&K, &V, i64) -> i64 + Send + Sync + 'static,
    ) -> KStream<K, V> {
        let mut state = self.state.borrow_mut();
        let name = state.name("KSTREAM-SOURCE");
        state.builder.add_source_with_timestamps(
            &name,
            topic,
            key_serde,
            value_serde,
            std::sync::Arc::new(timestamps),
        );
        KStream::new(Rc::clone(&self.state), name, false)
    }

    /// A table of the latest value per key of `topic`, materialized in key-value store
    /// `store` (changelogged, restored, queryable, in savepoints). A record with a null value
    /// (a tombstone) deletes its key.
    pub fn table<K: Data, V: Data>(
        &self,
        topic: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        store: &str,
    ) -> KTable<K, V> {
        let key_serde: Arc<dyn Serde<K>> = Arc::new(key_serde);
        let value_serde: Arc<dyn Serde<V>> = Arc::new(value_serde);
        let mut state = self.state.borrow_mut();
        let source = state.table_source(topic, &key_serde, &value_serde);
        state
            .builder
            .add_store(StoreBuilder::rocksdb(store, key_serde, value_serde));
        let name = format!("{store}-materialize");
        let store_name = store.to_owned();
        state.builder.add_processor(
            &name,
            move || processors::Materialize::<K, V> {
                store: store_name.clone(),
                _types: std::marker::PhantomData,
            },
            &[&source],
            &[store],
        );
        KTable::materialized(KStream::new(Rc::clone(&self.state), name, false), store)
    }

    /// A versioned table of `topic`: each key's values with the times they became valid (the
    /// records' event times), kept in versioned store `store` with `history` of older
    /// versions behind each key's newest. A stream joined with it meets the value as of each
    /// stream record's time, not the latest; a tombstone deletes from its time on. An update
    /// older than a key's newest version fills in history and is not forwarded as a change.
    pub fn versioned_table<K: Data, V: Data>(
        &self,
        topic: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        store: &str,
        history: std::time::Duration,
    ) -> KTable<K, V> {
        let key_serde: Arc<dyn Serde<K>> = Arc::new(key_serde);
        let value_serde: Arc<dyn Serde<V>> = Arc::new(value_serde);
        let mut state = self.state.borrow_mut();
        let source = state.table_source(topic, &key_serde, &value_serde);
        let history_ms = i64::try_from(history.as_millis()).unwrap_or(i64::MAX);
        state.builder.add_store(StoreBuilder::versioned(
            store,
            crate::state::StoreKind::RocksDb,
            key_serde,
            value_serde,
            history_ms,
        ));
        let name = format!("{store}-materialize");
        let store_name = store.to_owned();
        state.builder.add_processor(
            &name,
            move || processors::MaterializeVersioned::<K, V> {
                store: store_name.clone(),
                _types: std::marker::PhantomData,
            },
            &[&source],
            &[store],
        );
        KTable::versioned(KStream::new(Rc::clone(&self.state), name, false), store)
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
