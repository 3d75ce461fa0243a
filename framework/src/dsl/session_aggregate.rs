//! The processor behind session-windowed aggregations: finds the sessions a record touches,
//! merges them, emits updates (with tombstones for merged-away sessions) or final results,
//! routes late records, expires old sessions.

use std::sync::Arc;

use super::idle::IdleClock;
use super::processors::{FirstFn, FoldFn};
use super::window_aggregate::route_late;
use super::windows::{Emit, SessionWindows, Window, Windowed};
use crate::processor::{Data, ProcessError, Processor, ProcessorContext, PunctuationType};
use crate::state::{SessionEntry, SessionStore, WindowProgress};

use crate::record::Record;

/// Name of the operator's progress record in its session store.
const PROGRESS: &str = "progress";

/// Combines the aggregates of two sessions that a record joins into one.
pub(crate) type MergeFn<K, A> = Arc<dyn Fn(&K, A, A) -> A + Send + Sync>;

/// Aggregates records per key and session.
pub(crate) struct SessionAggregate<K, V, A> {
    pub store: String,
    pub windows: SessionWindows,
    pub emit: Emit,
    pub late_sink: Option<String>,
    pub first: FirstFn<K, V, A>,
    pub fold: FoldFn<K, V, A>,
    pub merge: MergeFn<K, A>,
    /// The idle-input policy.
    pub idle: IdleClock,
    /// Segments before this have been dropped in this processor's lifetime.
    pub dropped_below: i64,
}

/// Sessions emitted as final: `(key, (start, end, aggregate))`.
type Finals<K, A> = Vec<(K, SessionEntry<A>)>;

impl<K: Data, V: Data, A: Data> SessionAggregate<K, V, A> {
    /// Takes (when final-only) every session no on-time record can reach any more, drops
    /// expired segments and records the progress.
    fn close_and_expire(
        &mut self,
        store: &mut SessionStore<'_, K, A>,
        progress: &mut WindowProgress,
    ) -> Result<Finals<K, A>, ProcessError> {
        // A session is final once no on-time record (at or after the close time) can be
        // within the gap of its end.
        let close = progress
            .observed_time
            .saturating_sub(self.windows.grace_ms());
        let final_before = close.saturating_sub(self.windows.gap_ms());
        let mut finals = Vec::new();
        if self.emit == Emit::OnWindowClose && final_before > progress.emitted_through {
            finals = store.take_ending_before(final_before)?;
            progress.emitted_through = final_before;
        }
        let keep_from = store.expiry_boundary(progress.observed_time);
        if keep_from > self.dropped_below {
            store.drop_before(keep_from);
            self.dropped_below = keep_from;
        }
        store.set_progress(PROGRESS, *progress);
        Ok(finals)
    }

    /// Moves the operator's time up to `time` without a record, forwarding the windows that
    /// close.
    fn advance_to(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Option<A>>,
        time: i64,
    ) -> Result<(), ProcessError> {
        let mut store = ctx.session_store::<K, A>(&self.store)?;
        let mut progress = store.progress(PROGRESS)?;
        progress.observed_time = progress.observed_time.max(time);
        let finals = self.close_and_expire(&mut store, &mut progress)?;
        Self::forward_finals(ctx, finals);
        Ok(())
    }

    fn forward_finals(
        ctx: &mut ProcessorContext<'_, Windowed<K>, Option<A>>,
        finals: Finals<K, A>,
    ) {
        for (key, (start, end, value)) in finals {
            ctx.forward(Record::new(
                Windowed {
                    key,
                    window: Window { start, end },
                },
                Some(value),
                end,
            ));
        }
    }
}

impl<K: Data, V: Data, A: Data> Processor for SessionAggregate<K, V, A> {
    type KeyIn = K;
    type ValueIn = V;
    type KeyOut = Windowed<K>;
    type ValueOut = Option<A>;

    fn init(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Option<A>>,
    ) -> Result<(), ProcessError> {
        self.idle.schedule(ctx);
        Ok(())
    }

    fn process(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Option<A>>,
        record: Record<K, V>,
    ) -> Result<(), ProcessError> {
        let gap = self.windows.gap_ms();
        let at = record.timestamp;
        let mut store = ctx.session_store::<K, A>(&self.store)?;
        let mut progress = store.progress(PROGRESS)?;
        progress.observed_time = progress.observed_time.max(at);
        let close = progress
            .observed_time
            .saturating_sub(self.windows.grace_ms());
        let late = at < close;

        let mut changes: Vec<(Window, Option<A>)> = Vec::new();
        if !late {
            let touched = store.find(
                &record.key,
                at.saturating_sub(gap),
                at.saturating_add(gap),
                progress.observed_time,
            )?;
            let start = touched.iter().map(|s| s.0).fold(at, i64::min);
            let end = touched.iter().map(|s| s.1).fold(at, i64::max);
            let mut merged: Option<A> = None;
            for (s, e, value) in touched {
                store.remove(&record.key, s, e)?;
                if (s, e) != (start, end) && self.emit == Emit::OnUpdate {
                    changes.push((Window { start: s, end: e }, None));
                }
                merged = Some(match merged {
                    Some(acc) => (self.merge)(&record.key, acc, value),
                    None => value,
                });
            }
            let next = match merged {
                Some(acc) => (self.fold)(&record.key, record.value.clone(), acc),
                None => (self.first)(&record.key, record.value.clone()),
            };
            store.put(&record.key, start, end, &next)?;
            match self.emit {
                Emit::OnUpdate => changes.push((Window { start, end }, Some(next))),
                Emit::OnWindowClose => store.await_emission(&record.key, start, end)?,
            }
        }

        let finals = self.close_and_expire(&mut store, &mut progress)?;
        self.idle
            .note_input(ctx.wall_clock_time(), progress.observed_time);
        Self::forward_finals(ctx, finals);
        for (window, value) in changes {
            ctx.forward(Record {
                key: Windowed {
                    key: record.key.clone(),
                    window,
                },
                value,
                timestamp: at,
                headers: record.headers.clone(),
            });
        }
        if late {
            let sink = self.late_sink.as_deref();
            route_late(ctx, sink, progress.observed_time, &[], record);
        }
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Option<A>>,
        _kind: PunctuationType,
        now: i64,
    ) -> Result<(), ProcessError> {
        let observed = ctx
            .session_store::<K, A>(&self.store)?
            .progress(PROGRESS)?
            .observed_time;
        let Some(time) = self.idle.advance(ctx, now, observed) else {
            return Ok(());
        };
        self.advance_to(ctx, time)
    }

    fn end_of_input(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Option<A>>,
    ) -> Result<(), ProcessError> {
        // Every window closes; records that might still come are late from now on.
        self.advance_to(ctx, i64::MAX)
    }
}
