//! The processors behind the DSL: stateless record functions, keyed aggregation and table
//! materialization.

use std::sync::Arc;

use crate::processor::{Data, ProcessError, Processor, ProcessorContext};
use crate::record::Record;

/// A record function returning zero or more records.
pub(crate) type RecordFn<KI, VI, KO, VO> =
    Arc<dyn Fn(Record<KI, VI>) -> Vec<Record<KO, VO>> + Send + Sync>;

/// Applies a record function and forwards what it returns (map, filter, flat_map, ...).
pub(crate) struct Stateless<KI, VI, KO, VO> {
    pub f: RecordFn<KI, VI, KO, VO>,
}

impl<KI: Data, VI: Data, KO: Data, VO: Data> Processor for Stateless<KI, VI, KO, VO> {
    type KeyIn = KI;
    type ValueIn = VI;
    type KeyOut = KO;
    type ValueOut = VO;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, KO, VO>,
        record: Record<KI, VI>,
    ) -> Result<(), ProcessError> {
        for out in (self.f)(record) {
            ctx.forward(out);
        }
        Ok(())
    }
}

/// Folds a value into an aggregate.
pub(crate) type FoldFn<K, V, A> = Arc<dyn Fn(&K, V, A) -> A + Send + Sync>;

/// Makes the first aggregate of a key from its first value.
pub(crate) type FirstFn<K, V, A> = Arc<dyn Fn(&K, V) -> A + Send + Sync>;

/// How an aggregation starts and goes on: its first aggregate and its fold.
pub(crate) type Folding<K, V, A> = (FirstFn<K, V, A>, FoldFn<K, V, A>);

/// The folding of `count`: one, then one more per record.
pub(crate) fn counting<K: Data, V: Data>() -> Folding<K, V, i64> {
    (
        Arc::new(|_: &K, _: V| 1),
        Arc::new(|_: &K, _: V, n: i64| n + 1),
    )
}

/// The folding of `reduce`: the first value, then `reduce(aggregate, value)`.
pub(crate) fn reducing<K: Data, V: Data>(
    reduce: impl Fn(V, V) -> V + Send + Sync + 'static,
) -> Folding<K, V, V> {
    (
        Arc::new(|_: &K, v: V| v),
        Arc::new(move |_: &K, v: V, acc: V| reduce(acc, v)),
    )
}

/// The folding of `aggregate`: `fold` from `init()` for the first value, then from the
/// aggregate.
pub(crate) fn aggregating<K: Data, V: Data, A: Data>(
    init: impl Fn() -> A + Send + Sync + 'static,
    fold: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
) -> Folding<K, V, A> {
    let fold: FoldFn<K, V, A> = Arc::new(fold);
    let fold_first = Arc::clone(&fold);
    (Arc::new(move |k: &K, v: V| fold_first(k, v, init())), fold)
}

/// Folds each value into the aggregate stored under its key and forwards the new aggregate
/// (as a table update: never a deletion).
/// A key's first value goes through `first` (reduce keeps it, aggregate folds it into the
/// initial value); later values go through `fold`.
pub(crate) struct Aggregate<K, V, A> {
    pub store: String,
    pub first: FirstFn<K, V, A>,
    pub fold: FoldFn<K, V, A>,
}

impl<K: Data, V: Data, A: Data> Processor for Aggregate<K, V, A> {
    type KeyIn = K;
    type ValueIn = V;
    type KeyOut = K;
    type ValueOut = Option<A>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Option<A>>,
        record: Record<K, V>,
    ) -> Result<(), ProcessError> {
        let mut store = ctx.key_value_store::<K, A>(&self.store)?;
        let next = match store.get(&record.key)? {
            Some(current) => (self.fold)(&record.key, record.value, current),
            None => (self.first)(&record.key, record.value),
        };
        store.put(&record.key, &next)?;
        ctx.forward(Record {
            key: record.key,
            value: Some(next),
            timestamp: record.timestamp,
            headers: record.headers,
        });
        Ok(())
    }
}

/// Keeps the latest value per key of a table's source in a key-value store (a `None` value
/// deletes) and forwards each change.
pub(crate) struct Materialize<K, V> {
    pub store: String,
    pub _types: std::marker::PhantomData<fn(K, V)>,
}

impl<K: Data, V: Data> Processor for Materialize<K, V> {
    type KeyIn = K;
    type ValueIn = Option<V>;
    type KeyOut = K;
    type ValueOut = Option<V>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Option<V>>,
        record: Record<K, Option<V>>,
    ) -> Result<(), ProcessError> {
        let mut store = ctx.key_value_store::<K, V>(&self.store)?;
        match &record.value {
            Some(value) => store.put(&record.key, value)?,
            None => store.delete(&record.key)?,
        }
        ctx.forward(record);
        Ok(())
    }
}

/// Records each update of a versioned table's source at its time (a `None` value deletes
/// from then on) and forwards it when it is the key's newest version.
pub(crate) struct MaterializeVersioned<K, V> {
    pub store: String,
    pub _types: std::marker::PhantomData<fn(K, V)>,
}

impl<K: Data, V: Data> Processor for MaterializeVersioned<K, V> {
    type KeyIn = K;
    type ValueIn = Option<V>;
    type KeyOut = K;
    type ValueOut = Option<V>;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, Option<V>>,
        record: Record<K, Option<V>>,
    ) -> Result<(), ProcessError> {
        let newest = ctx.versioned_store::<K, V>(&self.store)?.put(
            &record.key,
            record.timestamp,
            record.value.as_ref(),
        )?;
        if newest {
            ctx.forward(record);
        }
        Ok(())
    }
}
