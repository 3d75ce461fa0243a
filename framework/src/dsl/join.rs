//! Stream-table joins: each stream record looks up its key in the table's store, in the task
//! that maintains the table (partition N of the stream and of the table's topic together).

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::{KStream, KTable};
use crate::processor::{Data, ProcessError, Processor, ProcessorContext};
use crate::record::Record;

/// Combines a stream value with the table's value for its key (`None` when the table has
/// none: left joins only).
pub(super) type Joiner<V, VT, VR> = Arc<dyn Fn(&V, Option<&VT>) -> Option<VR> + Send + Sync>;

/// Looks each record's key up in a table store and forwards what the joiner makes of it.
struct StreamTableJoin<K, V, VT, VR> {
    store: String,
    /// True when the table is versioned: the lookup is as of the stream record's time.
    versioned: bool,
    joiner: Joiner<V, VT, VR>,
    _types: PhantomData<fn(K)>,
}

impl<K: Data, V: Data, VT: Data, VR: Data> Processor for StreamTableJoin<K, V, VT, VR> {
    type KeyIn = K;
    type ValueIn = V;
    type KeyOut = K;
    type ValueOut = VR;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        record: Record<K, V>,
    ) -> Result<(), ProcessError> {
        let found = if self.versioned {
            ctx.versioned_store::<K, VT>(&self.store)?
                .get_as_of(&record.key, record.timestamp)?
        } else {
            ctx.key_value_store::<K, VT>(&self.store)?
                .get(&record.key)?
        };
        if let Some(value) = (self.joiner)(&record.value, found.as_ref()) {
            ctx.forward(record.with_value(value));
        }
        Ok(())
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Joins each record with `table`'s current value for its key (inner join: records whose
    /// key the table does not hold are dropped, as the join's definition says).
    ///
    /// The stream and the table's topic must be co-partitioned (same partition count and
    /// key partitioning; checked at start) and the stream must not have changed keys since
    /// its source (repartition it first). The table must be materialized: a table from a
    /// topic or an aggregation. Running several source topics in one task needs
    /// `processing.group_protocol = consumer`.
    ///
    /// ```
    /// use eddy::prelude::*;
    ///
    /// let builder = StreamsBuilder::new();
    /// let regions = builder.table("regions", StringSerde, StringSerde, "regions");
    /// builder
    ///     .stream("clicks", StringSerde, StringSerde)
    ///     .join(&regions, |page: &String, region: &String| format!("{page}@{region}"))
    ///     .to("enriched", StringSerde, StringSerde);
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let (s, u) = (StringSerde, "u".to_owned());
    /// driver.pipe_input("clicks", &s, &s, &u, &"/home".to_owned(), 1)?; // no region yet
    /// driver.pipe_input("regions", &s, &s, &u, &"eu".to_owned(), 2)?;
    /// driver.pipe_input("clicks", &s, &s, &u, &"/cart".to_owned(), 3)?;
    /// let out = driver.read_output("enriched", &s, &s)?;
    /// assert_eq!(out.iter().map(|r| r.value.as_str()).collect::<Vec<_>>(), ["/cart@eu"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.table_join(
            "KSTREAM-JOIN",
            table,
            Arc::new(move |v: &V, t: Option<&VT>| t.map(|t| joiner(v, t))),
        )
    }

    /// Joins each record with `table`'s current value for its key, or `None` when the table
    /// does not hold the key (left join: every record yields one result). Requirements as
    /// for [`join`](Self::join).
    pub fn left_join<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.table_join(
            "KSTREAM-LEFTJOIN",
            table,
            Arc::new(move |v: &V, t: Option<&VT>| Some(joiner(v, t))),
        )
    }

    /// Notes a build problem when the stream may have changed keys since its source: its
    /// records would not reach the task holding table store `store`.
    pub(super) fn note_changed_keys(
        &self,
        builder: &mut crate::topology::TopologyBuilder,
        name: &str,
        store: &str,
    ) {
        if self.key_changed {
            builder.note_problem(format!(
                "`{name}`: the stream may have changed keys before joining table store `{store}`; repartition it first (KStream::repartition) so that each key reaches the task holding it"
            ));
        }
    }

    fn table_join<VT: Data, VR: Data>(
        &self,
        kind: &str,
        table: &KTable<K, VT>,
        joiner: Joiner<V, VT, VR>,
    ) -> KStream<K, VR> {
        let mut state = self.state.borrow_mut();
        let name = state.name(kind);
        let Some(store) = table.store.clone() else {
            state.builder.note_problem(format!(
                "`{name}` joins a table that is not materialized (a filtered or mapped table); join the table it comes from, or materialize it through a topic"
            ));
            return KStream::new(Rc::clone(&self.state), name, self.key_changed);
        };
        self.note_changed_keys(&mut state.builder, &name, &store);
        let supplier_store = store.clone();
        let versioned = table.versioned;
        state.builder.add_processor(
            &name,
            move || StreamTableJoin::<K, V, VT, VR> {
                store: supplier_store.clone(),
                versioned,
                joiner: Arc::clone(&joiner),
                _types: PhantomData,
            },
            &[&self.node],
            &[&store],
        );
        KStream::new(Rc::clone(&self.state), name, false)
    }
}
