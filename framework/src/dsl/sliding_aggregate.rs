//! The processor behind sliding-window aggregations: keeps each key's recent records, folds
//! a record into every window that contains it, creates the windows it starts or ends,
//! emits updates or final results, routes late records, expires old windows and records.

use std::collections::BTreeSet;

use super::idle::IdleClock;
use super::processors::{FirstFn, FoldFn};
use super::window_aggregate::route_late;
use super::windows::{Emit, SlidingWindows, Window, Windowed};
use crate::processor::{Data, ProcessError, Processor, ProcessorContext, PunctuationType};
use crate::record::Record;
use crate::state::WindowProgress;

/// Name of the operator's progress record in its window store.
const PROGRESS: &str = "progress";

/// Aggregates records per key and sliding window.
pub(crate) struct SlidingAggregate<K, V, A> {
    /// Window store of the aggregates, by window start.
    pub store: String,
    /// Session-layout store of the key's records by time (`[t, t]`; lists: several may
    /// share a time), searched per key.
    pub records: String,
    pub windows: SlidingWindows,
    pub emit: Emit,
    /// The side output late records go to, when the app asked for a late topic.
    pub late_sink: Option<String>,
    pub first: FirstFn<K, V, A>,
    pub fold: FoldFn<K, V, A>,
    /// The idle-input policy.
    pub idle: IdleClock,
    /// Segments below these have been dropped in this processor's lifetime.
    pub dropped_below: (i64, i64),
}

impl<K: Data, V: Data, A: Data> SlidingAggregate<K, V, A> {
    fn window(&self, start: i64) -> Window {
        Window {
            start,
            end: start.saturating_add(self.windows.size_ms()),
        }
    }

    /// The starts of the windows a record of `key` at `t` belongs to or creates, given the
    /// times of the key's records around it (`t` included): the left windows of records at
    /// or up to `size` after `t`, the right windows of records up to `size + 1` before it,
    /// and `t`'s own right window when a record follows within `size + 1`.
    fn affected_starts(&self, t: i64, times: &[i64]) -> BTreeSet<i64> {
        let size = self.windows.size_ms();
        let mut starts = BTreeSet::new();
        for &r in times {
            if (t..=t.saturating_add(size)).contains(&r) {
                starts.insert(r.saturating_sub(size));
            }
            if (t.saturating_sub(size).saturating_sub(1)..t).contains(&r) {
                starts.insert(r.saturating_add(1));
            }
            if r > t && r <= t.saturating_add(size).saturating_add(1) {
                starts.insert(t.saturating_add(1));
            }
        }
        starts
    }

    /// Emits (when final-only) every window whose end the operator's time minus grace has
    /// passed and that was not emitted yet, in start order; drops expired segments of both
    /// stores; records the progress.
    fn close_and_expire(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Option<A>>,
        mut progress: WindowProgress,
    ) -> Result<(), ProcessError> {
        let size = self.windows.size_ms();
        let close = progress
            .observed_time
            .saturating_sub(self.windows.grace_ms());
        let mut store = ctx.window_store::<K, A>(&self.store)?;
        let mut finals = Vec::new();
        // Windows starting before `to` have ended before `close`.
        let to = close.saturating_sub(size);
        if self.emit == Emit::OnWindowClose && to > progress.emitted_through {
            finals = store.starting_between(progress.emitted_through, to)?;
            progress.emitted_through = to;
        }
        let keep_from = store.expiry_boundary(progress.observed_time);
        if keep_from > self.dropped_below.0 {
            store.drop_before(keep_from);
            self.dropped_below.0 = keep_from;
        }
        store.set_progress(PROGRESS, progress);
        let mut records = ctx.session_store::<K, Vec<V>>(&self.records)?;
        let keep_from = records.expiry_boundary(progress.observed_time);
        if keep_from > self.dropped_below.1 {
            records.drop_before(keep_from);
            self.dropped_below.1 = keep_from;
        }
        for (start, key, value) in finals {
            let window = self.window(start);
            ctx.forward(Record::new(
                Windowed { key, window },
                Some(value),
                window.end,
            ));
        }
        Ok(())
    }
}

impl<K: Data, V: Data, A: Data> Processor for SlidingAggregate<K, V, A> {
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
        let size = self.windows.size_ms();
        let t = record.timestamp;
        let mut progress = ctx.window_store::<K, A>(&self.store)?.progress(PROGRESS)?;
        progress.observed_time = progress.observed_time.max(t);
        let close = progress
            .observed_time
            .saturating_sub(self.windows.grace_ms());
        self.idle
            .note_input(ctx.wall_clock_time(), progress.observed_time);
        if t < close {
            // Its own window [t - size, t] has closed.
            let missed = [self.window(t.saturating_sub(size))];
            let sink = self.late_sink.as_deref();
            route_late(ctx, sink, progress.observed_time, &missed, record);
            return Ok(());
        }
        let key = &record.key;
        let observed = progress.observed_time;
        let mut records = ctx.session_store::<K, Vec<V>>(&self.records)?;
        // The key's records around `t` in time order, this one added (one scan serves both).
        let reach = size.saturating_mul(2).saturating_add(1);
        let mut near: Vec<(i64, Vec<V>)> = records
            .find(
                key,
                t.saturating_sub(reach),
                t.saturating_add(reach),
                observed,
            )?
            .into_iter()
            .map(|(at, _, values)| (at, values))
            .collect();
        let here = match near.binary_search_by_key(&t, |(at, _)| *at) {
            Ok(i) => i,
            Err(i) => {
                near.insert(i, (t, Vec::new()));
                i
            }
        };
        near[here].1.push(record.value.clone());
        records.put(key, t, t, &near[here].1)?;
        let times: Vec<i64> = near.iter().map(|(at, _)| *at).collect();

        let mut store = ctx.window_store::<K, A>(&self.store)?;
        let mut updates = Vec::new();
        for start in self.affected_starts(t, &times) {
            let end = start.saturating_add(size);
            let next = match store.get(key, start)? {
                // The record's own right window does not hold it.
                Some(_) if start > t => continue,
                // An existing window holds every other record in it already.
                Some(current) => (self.fold)(key, record.value.clone(), current),
                // A new window: every record in it, oldest first.
                None => {
                    let mut acc: Option<A> = None;
                    for (_, values) in near.iter().filter(|(at, _)| (start..=end).contains(at)) {
                        for value in values {
                            acc = Some(match acc {
                                None => (self.first)(key, value.clone()),
                                Some(a) => (self.fold)(key, value.clone(), a),
                            });
                        }
                    }
                    let Some(acc) = acc else { continue };
                    acc
                }
            };
            store.put(key, start, &next)?;
            if self.emit == Emit::OnUpdate {
                updates.push((self.window(start), next));
            }
        }
        self.close_and_expire(ctx, progress)?;
        for (window, value) in updates {
            ctx.forward(Record {
                key: Windowed {
                    key: record.key.clone(),
                    window,
                },
                value: Some(value),
                timestamp: t,
                headers: record.headers.clone(),
            });
        }
        Ok(())
    }

    fn punctuate(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Option<A>>,
        _kind: PunctuationType,
        now: i64,
    ) -> Result<(), ProcessError> {
        let mut progress = ctx.window_store::<K, A>(&self.store)?.progress(PROGRESS)?;
        let Some(time) = self.idle.advance(ctx, now, progress.observed_time) else {
            return Ok(());
        };
        progress.observed_time = time;
        self.close_and_expire(ctx, progress)
    }

    fn end_of_input(
        &mut self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Option<A>>,
    ) -> Result<(), ProcessError> {
        // Every window closes; records that might still come are late from now on.
        let mut progress = ctx.window_store::<K, A>(&self.store)?.progress(PROGRESS)?;
        progress.observed_time = i64::MAX;
        self.close_and_expire(ctx, progress)
    }
}
