//! Global tables and stream-global-table joins: every instance holds the whole table, so a
//! stream joins it by any key it derives from a record, with no co-partitioning.

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::join::Joiner;
use super::{KStream, StreamsBuilder};
use crate::processor::{Data, ProcessError, Processor, ProcessorContext};
use crate::record::Record;
use crate::serde::Serde;
use crate::state::GlobalStore;

/// A table every instance holds whole (all partitions of its topic), for small reference
/// data; see [`StreamsBuilder::global_table`].
pub struct GlobalKTable<K, V> {
    store: Arc<GlobalStore>,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
}

impl<K, V> std::fmt::Debug for GlobalKTable<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalKTable")
            .field("store", &self.store.name())
            .field("topic", &self.store.topic())
            .finish()
    }
}

impl<K, V> Clone for GlobalKTable<K, V> {
    fn clone(&self) -> Self {
        GlobalKTable {
            store: Arc::clone(&self.store),
            key_serde: Arc::clone(&self.key_serde),
            value_serde: Arc::clone(&self.value_serde),
        }
    }
}

impl StreamsBuilder {
    /// A global table of `topic`, named `store`: every instance reads all of the topic's
    /// partitions into memory (the latest value per key; a tombstone deletes) before its
    /// stream threads start, and keeps following it while it runs. Streams join it by a key
    /// derived from each record ([`KStream::join_global`]), whatever their partitioning.
    ///
    /// Meant for small reference data: the whole table is held in memory on every instance
    /// and read again from the topic's beginning at every start. Lookups see the table as
    /// the instance has read it so far (not as of the stream record's time), as in Kafka
    /// Streams.
    pub fn global_table<K: Data, V: Data>(
        &self,
        topic: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        store: &str,
    ) -> GlobalKTable<K, V> {
        let store = Arc::new(GlobalStore::new(store, topic));
        self.state
            .borrow_mut()
            .builder
            .add_global_store(Arc::clone(&store));
        GlobalKTable {
            store,
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
        }
    }
}

/// Makes the global table's key from a stream record.
type KeyFn<K, V, GK> = Arc<dyn Fn(&K, &V) -> GK + Send + Sync>;

/// Looks each record up in a global store and forwards what the joiner makes of it.
struct GlobalJoin<K, V, GK, GV, VR> {
    table: GlobalKTable<GK, GV>,
    key: KeyFn<K, V, GK>,
    joiner: Joiner<V, GV, VR>,
    _types: PhantomData<fn(K)>,
}

impl<K: Data, V: Data, GK: Data, GV: Data, VR: Data> GlobalJoin<K, V, GK, GV, VR> {
    fn lookup(&self, key: &GK) -> Result<Option<GV>, ProcessError> {
        let store = &self.table.store;
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            ProcessError::user(format!(
                "global table `{}` (topic `{}`): {what}: {e}",
                store.name(),
                store.topic()
            ))
        };
        let Some(bytes) = self
            .table
            .key_serde
            .serialize(key)
            .map_err(|e| failed("encoding the lookup key", &e))?
        else {
            return Ok(None);
        };
        store
            .get(&bytes)
            .map(|value| {
                self.table
                    .value_serde
                    .deserialize(Some(&value))
                    .map_err(|e| failed("decoding a value", &e))
            })
            .transpose()
    }
}

impl<K: Data, V: Data, GK: Data, GV: Data, VR: Data> Processor for GlobalJoin<K, V, GK, GV, VR> {
    type KeyIn = K;
    type ValueIn = V;
    type KeyOut = K;
    type ValueOut = VR;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        record: Record<K, V>,
    ) -> Result<(), ProcessError> {
        let found = self.lookup(&(self.key)(&record.key, &record.value))?;
        if let Some(value) = (self.joiner)(&record.value, found.as_ref()) {
            ctx.forward(record.with_value(value));
        }
        Ok(())
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Joins each record with the global table's value for the key `key` derives from the
    /// record (inner join: records the table has nothing for are dropped). No
    /// co-partitioning is needed: every instance holds the whole table.
    ///
    /// ```
    /// use eddy::prelude::*;
    ///
    /// let builder = StreamsBuilder::new();
    /// let countries = builder.global_table("countries", StringSerde, StringSerde, "countries");
    /// builder
    ///     .stream("orders", StringSerde, StringSerde) // order id -> country code
    ///     .join_global(&countries, |_, code: &String| code.clone(), |code, name: &String| {
    ///         format!("{code}:{name}")
    ///     })
    ///     .to("orders-named", StringSerde, StringSerde);
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let s = StringSerde;
    /// driver.pipe_input("countries", &s, &s, &"fr".to_owned(), &"France".to_owned(), 1)?;
    /// driver.pipe_input("orders", &s, &s, &"o1".to_owned(), &"fr".to_owned(), 2)?;
    /// driver.pipe_input("orders", &s, &s, &"o2".to_owned(), &"xx".to_owned(), 3)?;
    /// let out = driver.read_output("orders-named", &s, &s)?;
    /// assert_eq!(out.iter().map(|r| r.value.as_str()).collect::<Vec<_>>(), ["fr:France"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join_global<GK: Data, GV: Data, VR: Data>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, &GV) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.global_join(
            "KSTREAM-GLOBALJOIN",
            table,
            Arc::new(key),
            Arc::new(move |v: &V, g: Option<&GV>| g.map(|g| joiner(v, g))),
        )
    }

    /// Joins each record with the global table's value for the key `key` derives from the
    /// record, or `None` when the table has nothing for it (left join: every record yields
    /// one result).
    pub fn left_join_global<GK: Data, GV: Data, VR: Data>(
        &self,
        table: &GlobalKTable<GK, GV>,
        key: impl Fn(&K, &V) -> GK + Send + Sync + 'static,
        joiner: impl Fn(&V, Option<&GV>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.global_join(
            "KSTREAM-GLOBALLEFTJOIN",
            table,
            Arc::new(key),
            Arc::new(move |v: &V, g: Option<&GV>| Some(joiner(v, g))),
        )
    }

    fn global_join<GK: Data, GV: Data, VR: Data>(
        &self,
        kind: &str,
        table: &GlobalKTable<GK, GV>,
        key: KeyFn<K, V, GK>,
        joiner: Joiner<V, GV, VR>,
    ) -> KStream<K, VR> {
        let mut state = self.state.borrow_mut();
        let name = state.name(kind);
        let table = table.clone();
        state.builder.add_processor(
            &name,
            move || GlobalJoin::<K, V, GK, GV, VR> {
                table: table.clone(),
                key: Arc::clone(&key),
                joiner: Arc::clone(&joiner),
                _types: PhantomData,
            },
            &[&self.node],
            &[],
        );
        // Keys are unchanged: the record keeps its own key.
        KStream::new(Rc::clone(&self.state), name, self.key_changed)
    }
}
