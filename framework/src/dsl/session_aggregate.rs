//! The processor behind session-windowed aggregations: finds the sessions a record touches,
//! merges them, emits updates (with tombstones for merged-away sessions) or final results,
//! routes late records, expires old sessions.

use std::sync::Arc;

use super::processors::{FirstFn, FoldFn};
use super::window_aggregate::late_headers;
use super::windows::{Emit, SessionWindows, Window, Windowed};
use crate::processor::{Data, ProcessError, Processor, ProcessorContext};
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
    /// Segments before this have been dropped in this processor's lifetime.
    pub dropped_below: i64,
}

impl<K: Data, V: Data, A: Data> Processor for SessionAggregate<K, V, A> {
    type KeyIn = K;
    type ValueIn = V;
    type KeyOut = Windowed<K>;
    type ValueOut = Option<A>;

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

        // A session is final once no on-time record (at or after `close`) can be within the
        // gap of its end.
        let mut finals = Vec::new();
        let final_before = close.saturating_sub(gap);
        if self.emit == Emit::OnWindowClose && final_before > progress.emitted_through {
            finals = store.take_ending_before(final_before)?;
            progress.emitted_through = final_before;
        }
        let keep_from = store.expiry_boundary(progress.observed_time);
        if keep_from > self.dropped_below {
            store.drop_before(keep_from);
            self.dropped_below = keep_from;
        }
        store.set_progress(PROGRESS, progress);

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
            ctx.count_late();
            let operator = ctx.node_name().to_owned();
            tracing::debug!(
                operator,
                timestamp = at,
                operator_time = progress.observed_time,
                "late record"
            );
            if let Some(sink) = &self.late_sink {
                let headers = late_headers(&operator, progress.observed_time, &[], record.headers);
                ctx.forward_side(
                    sink,
                    Record {
                        key: record.key,
                        value: record.value,
                        timestamp: at,
                        headers,
                    },
                );
            }
        }
        Ok(())
    }
}
