//! The processor behind windowed stream-stream joins: buffers both sides by key and time,
//! joins each record with the other side's records within the window, and emits unmatched
//! records (left and outer joins) only once no on-time record can match them any more.
//! Records older than the operator's time minus grace are late: counted, not joined.

use std::sync::Arc;

use crate::processor::{Data, ProcessError, Processor, ProcessorContext};
use crate::record::Record;
use crate::state::{SessionStore, WindowProgress};

/// Name of the join's progress record (in its left buffer).
const PROGRESS: &str = "progress";

/// A record of either side of a join, as the join processor receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Side<L, R> {
    Left(L),
    Right(R),
}

/// Makes the result of a pair, or of an unmatched record (the other side `None`).
pub(crate) type PairJoiner<L, R, VR> = Arc<dyn Fn(Option<&L>, Option<&R>) -> VR + Send + Sync>;

/// The stores of a join: each side's buffer, and the records not matched yet.
#[derive(Debug, Clone)]
pub(crate) struct JoinStores {
    pub left: String,
    pub right: String,
    pub left_unmatched: Option<String>,
    pub right_unmatched: Option<String>,
}

/// Joins two streams within a time window.
pub(crate) struct StreamJoin<K, L, R, VR> {
    pub stores: JoinStores,
    /// A left record at `t` matches right records in `[t - before, t + after]`.
    pub before_ms: i64,
    pub after_ms: i64,
    pub grace_ms: i64,
    pub joiner: PairJoiner<L, R, VR>,
    pub dropped_below: i64,
    pub _types: std::marker::PhantomData<fn(K)>,
}

/// Appends `value` to the list buffered in `store` under `key` at `at`.
pub(crate) fn append<K: 'static, V: 'static + Clone>(
    store: &mut SessionStore<'_, K, Vec<V>>,
    key: &K,
    at: i64,
    value: &V,
    observed: i64,
) -> Result<(), ProcessError> {
    let mut list = store
        .find(key, at, at, observed)?
        .into_iter()
        .next()
        .map(|(_, _, list)| list)
        .unwrap_or_default();
    list.push(value.clone());
    store.put(key, at, at, &list)?;
    Ok(())
}

impl<K: Data, L: Data, R: Data, VR: Data> StreamJoin<K, L, R, VR> {
    /// The records of the other side within the window of a record at `at`:
    /// `(time, values)` of each matching time.
    fn matches<V: Data>(
        ctx: &mut ProcessorContext<'_, K, VR>,
        store: &str,
        key: &K,
        from: i64,
        to: i64,
        observed: i64,
    ) -> Result<Vec<(i64, Vec<V>)>, ProcessError> {
        Ok(ctx
            .session_store::<K, Vec<V>>(store)?
            .find(key, from, to, observed)?
            .into_iter()
            .map(|(at, _, values)| (at, values))
            .collect())
    }

    /// Removes the records at `times` from an unmatched buffer: they found a partner.
    fn matched<V: Data>(
        ctx: &mut ProcessorContext<'_, K, VR>,
        store: Option<&String>,
        key: &K,
        times: &[i64],
    ) -> Result<(), ProcessError> {
        if let Some(store) = store {
            let mut unmatched = ctx.session_store::<K, Vec<V>>(store)?;
            for &at in times {
                unmatched.remove(key, at, at)?;
            }
        }
        Ok(())
    }

    /// Buffers an unmatched record until no on-time record can match it.
    fn await_partner<V: Data>(
        ctx: &mut ProcessorContext<'_, K, VR>,
        store: Option<&String>,
        key: &K,
        at: i64,
        value: &V,
        observed: i64,
    ) -> Result<(), ProcessError> {
        if let Some(store) = store {
            let mut unmatched = ctx.session_store::<K, Vec<V>>(store)?;
            append(&mut unmatched, key, at, value, observed)?;
            unmatched.await_emission(key, at, at)?;
        }
        Ok(())
    }

    /// Takes the records of an unmatched buffer that can no longer be matched (their time
    /// before `before`).
    fn expired_unmatched<V: Data>(
        ctx: &mut ProcessorContext<'_, K, VR>,
        store: Option<&String>,
        before: i64,
    ) -> Result<Vec<(K, i64, Vec<V>)>, ProcessError> {
        let Some(store) = store else {
            return Ok(Vec::new());
        };
        let mut unmatched = ctx.session_store::<K, Vec<V>>(store)?;
        let due = unmatched.take_ending_before(before)?;
        let mut out = Vec::with_capacity(due.len());
        for (key, (at, _, values)) in due {
            unmatched.remove(&key, at, at)?;
            out.push((key, at, values));
        }
        Ok(out)
    }

    /// Joins a record of one side (`value` at time `at`): finds the other side's records of
    /// `key` within `window`, marks them matched, and buffers the record (as unmatched too
    /// when nothing matched). Returns the partners with the time of each result.
    #[allow(clippy::too_many_arguments)]
    fn join_one<This: Data, Other: Data>(
        ctx: &mut ProcessorContext<'_, K, VR>,
        key: &K,
        (at, value): (i64, &This),
        observed: i64,
        (store, unmatched): (&String, Option<&String>),
        (other_store, other_unmatched): (&String, Option<&String>),
        (from, to): (i64, i64),
    ) -> Result<Vec<(i64, Other)>, ProcessError> {
        let found = Self::matches::<Other>(ctx, other_store, key, from, to, observed)?;
        let times: Vec<i64> = found.iter().map(|(t, _)| *t).collect();
        Self::matched::<Other>(ctx, other_unmatched, key, &times)?;
        append(
            &mut ctx.session_store::<K, Vec<This>>(store)?,
            key,
            at,
            value,
            observed,
        )?;
        if found.is_empty() {
            Self::await_partner(ctx, unmatched, key, at, value, observed)?;
        }
        Ok(found
            .into_iter()
            .flat_map(|(t, values)| values.into_iter().map(move |v| (t.max(at), v)))
            .collect())
    }

    /// Takes the unmatched records no on-time record can reach any more at the operator's
    /// time, drops expired buffers and records the progress.
    fn close_unmatched(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        progress: WindowProgress,
    ) -> Result<Unmatched<K, L, R>, ProcessError> {
        let observed = progress.observed_time;
        let close = observed.saturating_sub(self.grace_ms);
        // A left record at `t` meets right records up to `t + after`, and on-time records
        // are at `close` or later.
        let lefts = Self::expired_unmatched::<L>(
            ctx,
            self.stores.left_unmatched.as_ref(),
            close.saturating_sub(self.after_ms),
        )?;
        let rights = Self::expired_unmatched::<R>(
            ctx,
            self.stores.right_unmatched.as_ref(),
            close.saturating_sub(self.before_ms),
        )?;
        self.expire_buffers(ctx, observed)?;
        ctx.session_store::<K, Vec<L>>(&self.stores.left)?
            .set_progress(PROGRESS, progress);
        Ok((lefts, rights))
    }

    /// Forwards a result with a missing side for each unmatched record.
    fn forward_unmatched(
        &self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        (lefts, rights): Unmatched<K, L, R>,
    ) {
        for (key, t, values) in lefts {
            for l in &values {
                ctx.forward(Record::new(key.clone(), (self.joiner)(Some(l), None), t));
            }
        }
        for (key, t, values) in rights {
            for r in &values {
                ctx.forward(Record::new(key.clone(), (self.joiner)(None, Some(r)), t));
            }
        }
    }

    fn expire_buffers(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        observed: i64,
    ) -> Result<(), ProcessError> {
        let boundary = ctx
            .session_store::<K, Vec<L>>(&self.stores.left)?
            .expiry_boundary(observed);
        if boundary <= self.dropped_below {
            return Ok(());
        }
        self.dropped_below = boundary;
        ctx.session_store::<K, Vec<L>>(&self.stores.left)?
            .drop_before(boundary);
        ctx.session_store::<K, Vec<R>>(&self.stores.right)?
            .drop_before(boundary);
        if let Some(store) = &self.stores.left_unmatched {
            ctx.session_store::<K, Vec<L>>(store)?.drop_before(boundary);
        }
        if let Some(store) = &self.stores.right_unmatched {
            ctx.session_store::<K, Vec<R>>(store)?.drop_before(boundary);
        }
        Ok(())
    }
}

/// Unmatched records of each side whose window closed: `(key, time, values)`.
type Unmatched<K, L, R> = (Vec<(K, i64, Vec<L>)>, Vec<(K, i64, Vec<R>)>);

impl<K: Data, L: Data, R: Data, VR: Data> Processor for StreamJoin<K, L, R, VR> {
    type KeyIn = K;
    type ValueIn = Side<L, R>;
    type KeyOut = K;
    type ValueOut = VR;

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, K, VR>,
        record: Record<K, Side<L, R>>,
    ) -> Result<(), ProcessError> {
        let at = record.timestamp;
        let mut progress: WindowProgress = ctx
            .session_store::<K, Vec<L>>(&self.stores.left)?
            .progress(PROGRESS)?;
        progress.observed_time = progress.observed_time.max(at);
        let observed = progress.observed_time;
        let close = observed.saturating_sub(self.grace_ms);
        let mut out: Vec<(i64, VR)> = Vec::new();
        if at < close {
            // Too old to be joined consistently: another on-time record may already have
            // been emitted as unmatched in its place.
            ctx.count_late();
            tracing::debug!(
                operator = ctx.node_name(),
                timestamp = at,
                operator_time = observed,
                "late record"
            );
        } else {
            let key = &record.key;
            out = match &record.value {
                Side::Left(value) => {
                    let stores = (&self.stores.left, self.stores.left_unmatched.as_ref());
                    let others = (&self.stores.right, self.stores.right_unmatched.as_ref());
                    let window = (
                        at.saturating_sub(self.before_ms),
                        at.saturating_add(self.after_ms),
                    );
                    Self::join_one::<L, R>(ctx, key, (at, value), observed, stores, others, window)?
                        .into_iter()
                        .map(|(t, r)| (t, (self.joiner)(Some(value), Some(&r))))
                        .collect()
                }
                Side::Right(value) => {
                    let stores = (&self.stores.right, self.stores.right_unmatched.as_ref());
                    let others = (&self.stores.left, self.stores.left_unmatched.as_ref());
                    let window = (
                        at.saturating_sub(self.after_ms),
                        at.saturating_add(self.before_ms),
                    );
                    Self::join_one::<R, L>(ctx, key, (at, value), observed, stores, others, window)?
                        .into_iter()
                        .map(|(t, l)| (t, (self.joiner)(Some(&l), Some(value))))
                        .collect()
                }
            };
        }

        let unmatched = self.close_unmatched(ctx, progress)?;
        for (timestamp, value) in out {
            ctx.forward(Record {
                key: record.key.clone(),
                value,
                timestamp,
                headers: record.headers.clone(),
            });
        }
        self.forward_unmatched(ctx, unmatched);
        Ok(())
    }

    fn end_of_input(&mut self, ctx: &mut ProcessorContext<'_, K, VR>) -> Result<(), ProcessError> {
        // No record can come to match the ones waiting: they are all unmatched now.
        let mut progress: WindowProgress = ctx
            .session_store::<K, Vec<L>>(&self.stores.left)?
            .progress(PROGRESS)?;
        progress.observed_time = i64::MAX;
        let unmatched = self.close_unmatched(ctx, progress)?;
        self.forward_unmatched(ctx, unmatched);
        Ok(())
    }
}
