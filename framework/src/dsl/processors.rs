//! The processors behind the DSL: stateless record functions and keyed aggregation.

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

/// Folds each value into the aggregate stored under its key and forwards the new aggregate.
pub(crate) struct Aggregate<K, V, A> {
    pub store: String,
    pub init: Arc<dyn Fn() -> A + Send + Sync>,
    pub fold: FoldFn<K, V, A>,
}

impl<K: Data, V: Data, A: Data> Processor for Aggregate<K, V, A> {
    type KeyIn = K;
    type ValueIn = V;
    type KeyOut = K;
    type ValueOut = A;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, A>,
        record: Record<K, V>,
    ) -> Result<(), ProcessError> {
        let mut store = ctx.key_value_store::<K, A>(&self.store)?;
        let current = store.get(&record.key)?.unwrap_or_else(|| (self.init)());
        let next = (self.fold)(&record.key, record.value, current);
        store.put(&record.key, &next)?;
        ctx.forward(Record {
            key: record.key,
            value: next,
            timestamp: record.timestamp,
            headers: record.headers,
        });
        Ok(())
    }
}
