//! Stream-table joins with a grace period over versioned tables: stream records wait until
//! the stream's time has passed theirs by the grace, then join the table as of their own
//! time, so table versions that arrive late by up to the grace are still seen.

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::internal_serdes::ListSerde;
use super::join::Joiner;
use super::stream_join_processor::append;
use super::{KStream, KTable};
use crate::processor::{Data, ProcessError, Processor, ProcessorContext};
use crate::record::Record;
use crate::serde::Serde;
use crate::state::{StoreBuilder, StoreKind, WindowProgress};

/// Name of the operator's progress record in its buffer.
const PROGRESS: &str = "progress";

/// How long stream records of a join with a versioned table wait for late table versions,
/// and where they wait: session-layout store `store`, with the stream's serdes.
pub struct TableJoinGrace<K, V> {
    grace_ms: i64,
    store: String,
    key_serde: Arc<dyn Serde<K>>,
    value_serde: Arc<dyn Serde<V>>,
}

impl<K, V> std::fmt::Debug for TableJoinGrace<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableJoinGrace")
            .field("grace_ms", &self.grace_ms)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl<K: Data, V: Data> TableJoinGrace<K, V> {
    /// Stream records wait `grace` of stream time in store `store` (changelogged, restored,
    /// in savepoints) before they join.
    pub fn new(
        grace: Duration,
        store: &str,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> Self {
        TableJoinGrace {
            grace_ms: i64::try_from(grace.as_millis()).unwrap_or(i64::MAX),
            store: store.to_owned(),
            key_serde: Arc::new(key_serde),
            value_serde: Arc::new(value_serde),
        }
    }
}

/// Buffers stream records and joins those the stream's time has passed by the grace.
struct GraceJoin<K, V, VT, VR> {
    table: String,
    buffer: String,
    grace_ms: i64,
    joiner: Joiner<V, VT, VR>,
    _types: PhantomData<fn(K)>,
}

impl<K: Data, V: Data, VT: Data, VR: Data> GraceJoin<K, V, VT, VR> {
    /// Joins and forwards, oldest first, every buffered record at or before `observed`
    /// minus the grace; records the progress.
    fn drain(
        &self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        progress: WindowProgress,
    ) -> Result<(), ProcessError> {
        let horizon = progress.observed_time.saturating_sub(self.grace_ms);
        let mut buffer = ctx.session_store::<K, Vec<V>>(&self.buffer)?;
        let due = buffer.take_ending_before(horizon.saturating_add(1))?;
        for (key, (at, _, _)) in &due {
            buffer.remove(key, *at, *at)?;
        }
        buffer.set_progress(PROGRESS, progress);
        for (key, (at, _, values)) in due {
            let found = ctx
                .versioned_store::<K, VT>(&self.table)?
                .get_as_of(&key, at)?;
            for value in values {
                if let Some(joined) = (self.joiner)(&value, found.as_ref()) {
                    ctx.forward(Record::new(key.clone(), joined, at));
                }
            }
        }
        Ok(())
    }
}

impl<K: Data, V: Data, VT: Data, VR: Data> Processor for GraceJoin<K, V, VT, VR> {
    type KeyIn = K;
    type ValueIn = V;
    type KeyOut = K;
    type ValueOut = VR;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        record: Record<K, V>,
    ) -> Result<(), ProcessError> {
        let mut buffer = ctx.session_store::<K, Vec<V>>(&self.buffer)?;
        let mut progress = buffer.progress(PROGRESS)?;
        progress.observed_time = progress.observed_time.max(record.timestamp);
        let at = record.timestamp;
        append(
            &mut buffer,
            &record.key,
            at,
            &record.value,
            progress.observed_time,
        )?;
        buffer.await_emission(&record.key, at, at)?;
        self.drain(ctx, progress)
    }

    fn end_of_input(&mut self, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<(), ProcessError> {
        let mut progress = ctx
            .session_store::<K, Vec<V>>(&self.buffer)?
            .progress(PROGRESS)?;
        progress.observed_time = i64::MAX;
        self.drain(ctx, progress)
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    /// Joins each record with versioned `table` as of the record's time, once the stream's
    /// time has passed it by `grace` (inner join: records the table has no value for then
    /// are dropped). Table versions that arrive up to the grace after a stream record still
    /// meet it; results come out in event-time order, delayed by the grace. Record headers
    /// are not kept through the wait. Requirements as for [`join`](Self::join); the table
    /// must be versioned ([`StreamsBuilder::versioned_table`](super::StreamsBuilder::versioned_table)).
    pub fn join_with_grace<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        grace: TableJoinGrace<K, V>,
        joiner: impl Fn(&V, &VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.grace_join(
            "KSTREAM-GRACEJOIN",
            table,
            grace,
            Arc::new(move |v: &V, t: Option<&VT>| t.map(|t| joiner(v, t))),
        )
    }

    /// As [`join_with_grace`](Self::join_with_grace), yielding one result per record: the
    /// joiner gets `None` when the table had no value for the key at the record's time.
    pub fn left_join_with_grace<VT: Data, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        grace: TableJoinGrace<K, V>,
        joiner: impl Fn(&V, Option<&VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR> {
        self.grace_join(
            "KSTREAM-GRACELEFTJOIN",
            table,
            grace,
            Arc::new(move |v: &V, t: Option<&VT>| Some(joiner(v, t))),
        )
    }

    fn grace_join<VT: Data, VR: Data>(
        &self,
        kind: &str,
        table: &KTable<K, VT>,
        grace: TableJoinGrace<K, V>,
        joiner: Joiner<V, VT, VR>,
    ) -> KStream<K, VR> {
        let mut state = self.state.borrow_mut();
        let name = state.name(kind);
        let store = match (&table.store, table.versioned) {
            (Some(store), true) => store.clone(),
            _ => {
                state.builder.note_problem(format!(
                    "`{name}` joins with a grace period, which needs a versioned table (StreamsBuilder::versioned_table)"
                ));
                return KStream::new(Rc::clone(&self.state), name, self.key_changed);
            }
        };
        self.note_changed_keys(&mut state.builder, &name, &store);
        // Records wait at most the grace; the retention only sizes the store's segments.
        state.builder.add_store(StoreBuilder::session(
            &grace.store,
            StoreKind::RocksDb,
            Arc::clone(&grace.key_serde),
            ListSerde::new(Arc::clone(&grace.value_serde)),
            grace.grace_ms.saturating_mul(2).max(60_000),
        ));
        let (table_store, buffer, grace_ms) = (store.clone(), grace.store.clone(), grace.grace_ms);
        state.builder.add_processor(
            &name,
            move || GraceJoin::<K, V, VT, VR> {
                table: table_store.clone(),
                buffer: buffer.clone(),
                grace_ms,
                joiner: Arc::clone(&joiner),
                _types: PhantomData,
            },
            &[&self.node],
            &[&store, &grace.store],
        );
        KStream::new(Rc::clone(&self.state), name, false)
    }
}
