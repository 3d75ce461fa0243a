//! Table-table joins: inner, left and outer joins of two co-partitioned tables into a
//! materialized table, updated from either side's changes, deletions included.

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::{KStream, KTable};
use crate::processor::{Data, ProcessError, Processor, ProcessorContext};
use crate::record::Record;
use crate::serde::Serde;
use crate::state::StoreBuilder;

/// The joined value of a key from both sides' values; `None`: no row (the join kind
/// decides which sides must be present).
type TableJoiner<L, R, VR> = Arc<dyn Fn(Option<&L>, Option<&R>) -> Option<VR> + Send + Sync>;

/// Recomputes the joined row of a key when one side changes, from the other side's store,
/// and forwards the change of the result (kept in the result store, so a deletion is sent
/// only for a row that existed).
struct TableJoinSide<K, L, R, VR> {
    /// True when this processor receives the left table's changes.
    left_side: bool,
    /// The other side's store.
    other: String,
    result: String,
    joiner: TableJoiner<L, R, VR>,
    _types: PhantomData<fn(K)>,
}

impl<K: Data, L: Data, R: Data, VR: Data> TableJoinSide<K, L, R, VR> {
    fn row(
        &self,
        ctx: &mut ProcessorContext<'_, K, Option<VR>>,
        key: &K,
        changed: Option<&dyn std::any::Any>,
    ) -> Result<Option<VR>, ProcessError> {
        Ok(if self.left_side {
            let right = ctx.key_value_store::<K, R>(&self.other)?.get(key)?;
            let left = changed.and_then(|c| c.downcast_ref::<L>());
            (self.joiner)(left, right.as_ref())
        } else {
            let left = ctx.key_value_store::<K, L>(&self.other)?.get(key)?;
            let right = changed.and_then(|c| c.downcast_ref::<R>());
            (self.joiner)(left.as_ref(), right)
        })
    }
}

/// The change of one side, as the join processor of that side receives it.
trait SideValue: Data {
    fn as_any(&self) -> &dyn std::any::Any;
}

impl<T: Data> SideValue for T {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A join side processor typed by the values it receives.
struct Typed<P, V> {
    inner: P,
    _values: PhantomData<fn(V)>,
}

impl<K: Data, L: Data, R: Data, VR: Data, V: Data> Processor
    for Typed<TableJoinSide<K, L, R, VR>, V>
{
    type KeyIn = K;
    type ValueIn = Option<V>;
    type KeyOut = K;
    type ValueOut = Option<VR>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Option<VR>>,
        record: Record<K, Option<V>>,
    ) -> Result<(), ProcessError> {
        let join = &self.inner;
        let row = join.row(
            ctx,
            &record.key,
            record.value.as_ref().map(SideValue::as_any),
        )?;
        if let Some(value) = update_row(ctx, &join.result, &record.key, row)? {
            ctx.forward(Record {
                key: record.key,
                value,
                timestamp: record.timestamp,
                headers: record.headers,
            });
        }
        Ok(())
    }
}

/// Stores `row` as the joined row of `key` in result store `store` (deleting it for `None`)
/// and returns the change to forward: the new row, or `None` for a row that existed and
/// stops existing; nothing when no row existed and none does.
pub(super) fn update_row<K: Data, VR: Data, KC: Data, VC: Data>(
    ctx: &mut ProcessorContext<'_, KC, VC>,
    store: &str,
    key: &K,
    row: Option<VR>,
) -> Result<Option<Option<VR>>, ProcessError> {
    let mut result = ctx.key_value_store::<K, VR>(store)?;
    Ok(match row {
        Some(row) => {
            result.put(key, &row)?;
            Some(Some(row))
        }
        None if result.get(key)?.is_some() => {
            result.delete(key)?;
            Some(None)
        }
        None => None,
    })
}

impl<K: Data, L: Data> KTable<K, L> {
    /// Joins this table with `other` on the key (inner: a row while both hold the key) into
    /// a table kept in key-value store `store` with `value_serde`. A change on either side
    /// updates the row; a row that stops existing is deleted downstream. Both tables must be
    /// materialized (from a topic or an aggregation) and co-partitioned; reading both in one
    /// task needs `processing.group_protocol = consumer`.
    ///
    /// ```
    /// use eddy::prelude::*;
    ///
    /// let builder = StreamsBuilder::new();
    /// let names = builder.table("names", StringSerde, StringSerde, "names");
    /// let regions = builder.table("regions", StringSerde, StringSerde, "regions");
    /// names
    ///     .join(&regions, "name-regions", StringSerde, |n: &String, r: &String| format!("{n}@{r}"))
    ///     .to_stream()
    ///     .to("out", StringSerde, Nullable(StringSerde));
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// driver.pipe_raw("names", Some(b"u1"), Some(b"ann"), 1)?;
    /// driver.pipe_raw("regions", Some(b"u1"), Some(b"eu"), 2)?;
    /// driver.pipe_raw("regions", Some(b"u1"), None, 3)?;
    /// let out = driver.read_output("out", &StringSerde, &Nullable(StringSerde))?;
    /// let values: Vec<Option<String>> = out.into_iter().map(|r| r.value).collect();
    /// assert_eq!(values, vec![Some("ann@eu".to_owned()), None]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join<R: Data, VR: Data>(
        &self,
        other: &KTable<K, R>,
        store: &str,
        value_serde: impl Serde<VR>,
        joiner: impl Fn(&L, &R) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let joiner: TableJoiner<L, R, VR> = Arc::new(move |l, r| Some(joiner(l?, r?)));
        self.table_join(other, store, value_serde, joiner)
    }

    /// Left join: a row while this table holds the key, with `None` for a missing right
    /// value. As [`join`](Self::join) otherwise.
    pub fn left_join<R: Data, VR: Data>(
        &self,
        other: &KTable<K, R>,
        store: &str,
        value_serde: impl Serde<VR>,
        joiner: impl Fn(&L, Option<&R>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let joiner: TableJoiner<L, R, VR> = Arc::new(move |l, r| Some(joiner(l?, r)));
        self.table_join(other, store, value_serde, joiner)
    }

    /// Outer join: a row while either table holds the key. As [`join`](Self::join)
    /// otherwise.
    pub fn outer_join<R: Data, VR: Data>(
        &self,
        other: &KTable<K, R>,
        store: &str,
        value_serde: impl Serde<VR>,
        joiner: impl Fn(Option<&L>, Option<&R>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        let joiner: TableJoiner<L, R, VR> = Arc::new(move |l, r| {
            if l.is_none() && r.is_none() {
                None
            } else {
                Some(joiner(l, r))
            }
        });
        self.table_join(other, store, value_serde, joiner)
    }

    fn table_join<R: Data, VR: Data>(
        &self,
        other: &KTable<K, R>,
        store: &str,
        value_serde: impl Serde<VR>,
        joiner: TableJoiner<L, R, VR>,
    ) -> KTable<K, VR> {
        let changes = self.to_stream();
        let mut state = changes.state.borrow_mut();
        let (Some(left_store), Some(right_store)) = (self.store.clone(), other.store.clone())
        else {
            state.builder.note_problem(format!(
                "table join `{store}`: both tables must be materialized (from a topic or an aggregation), not filtered or mapped"
            ));
            return KTable::new(KStream::new(
                Rc::clone(&changes.state),
                store.to_owned(),
                false,
            ));
        };
        if self.versioned || other.versioned {
            state.builder.note_problem(format!(
                "table join `{store}`: joining versioned tables is not supported; join their latest values through tables without history"
            ));
            return KTable::new(KStream::new(
                Rc::clone(&changes.state),
                store.to_owned(),
                false,
            ));
        }
        let Some(key_serde) = state
            .builder
            .store(&left_store)
            .and_then(|s| s.key_serde_as::<K>().cloned())
        else {
            state.builder.note_problem(format!(
                "table join `{store}`: the key serde of store `{left_store}` is unknown"
            ));
            return KTable::new(KStream::new(
                Rc::clone(&changes.state),
                store.to_owned(),
                false,
            ));
        };
        state
            .builder
            .add_store(StoreBuilder::rocksdb(store, key_serde, value_serde));
        let left_node = format!("{store}-join-left");
        let right_node = format!("{store}-join-right");
        let (j, result) = (Arc::clone(&joiner), store.to_owned());
        let other_store = right_store.clone();
        state.builder.add_processor(
            &left_node,
            move || Typed::<_, L> {
                inner: TableJoinSide::<K, L, R, VR> {
                    left_side: true,
                    other: other_store.clone(),
                    result: result.clone(),
                    joiner: Arc::clone(&j),
                    _types: PhantomData,
                },
                _values: PhantomData,
            },
            &[changes.node()],
            &[&right_store, store],
        );
        let result = store.to_owned();
        let other_store = left_store.clone();
        state.builder.add_processor(
            &right_node,
            move || Typed::<_, R> {
                inner: TableJoinSide::<K, L, R, VR> {
                    left_side: false,
                    other: other_store.clone(),
                    result: result.clone(),
                    joiner: Arc::clone(&joiner),
                    _types: PhantomData,
                },
                _values: PhantomData,
            },
            &[other.to_stream().node()],
            &[&left_store, store],
        );
        // One node carries both sides' changes on.
        let merged = format!("{store}-join");
        state.builder.add_processor(
            &merged,
            || super::processors::Stateless::<K, Option<VR>, K, Option<VR>> {
                f: Arc::new(|r| vec![r]),
            },
            &[&left_node, &right_node],
            &[],
        );
        drop(state);
        KTable::materialized(
            KStream::new(Rc::clone(&changes.state), merged, false),
            store,
        )
    }
}
