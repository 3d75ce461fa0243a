//! The processor behind windowed aggregations: folds each record into its windows in a
//! window store, emits updates or final results, routes late records, expires old windows.

use super::idle::IdleClock;
use super::processors::{FirstFn, FoldFn};
use super::windows::{Emit, TimeWindows, Window, Windowed};
use crate::processor::{Data, ProcessError, Processor, ProcessorContext, PunctuationType};
use crate::record::{Headers, Record};
use crate::state::{WindowProgress, WindowStore};

/// Name of the operator's progress record in its window store.
const PROGRESS: &str = "progress";

/// Header naming the operator that found a record late.
pub const LATE_OPERATOR_HEADER: &str = "eddy-late-operator";
/// Header with the operator's time (largest timestamp seen) when the record came, in ms.
pub const LATE_OPERATOR_TIME_HEADER: &str = "eddy-late-operator-time";
/// Header naming a closed window the record missed, as `start,end` in ms; one per window.
pub const LATE_WINDOW_HEADER: &str = "eddy-late-window";

/// Counts a late record at the current processor and, when the app named a late topic,
/// forwards it to `sink` with headers naming the operator, its time and the `missed`
/// windows.
pub(crate) fn route_late<K: Data, V: Data, KO: Data, VO: Data>(
    ctx: &mut ProcessorContext<'_, KO, VO>,
    sink: Option<&str>,
    operator_time: i64,
    missed: &[Window],
    record: Record<K, V>,
) {
    ctx.count_late();
    let operator = ctx.node_name().to_owned();
    tracing::debug!(
        operator,
        timestamp = record.timestamp,
        operator_time,
        windows = missed.len(),
        "late record"
    );
    if let Some(sink) = sink {
        let headers = late_headers(&operator, operator_time, missed, record.headers);
        ctx.forward_side(
            sink,
            Record {
                key: record.key,
                value: record.value,
                timestamp: record.timestamp,
                headers,
            },
        );
    }
}

/// Aggregates records per key and time window.
pub(crate) struct WindowAggregate<K, V, A> {
    pub store: String,
    pub windows: TimeWindows,
    pub emit: Emit,
    /// The side output late records go to, when the app asked for a late topic.
    pub late_sink: Option<String>,
    pub first: FirstFn<K, V, A>,
    pub fold: FoldFn<K, V, A>,
    /// The idle-input policy.
    pub idle: IdleClock,
    /// Windows starting before this have been dropped (in this processor's lifetime; a new
    /// one drops once more, which deletes nothing).
    pub dropped_below: i64,
}

/// The headers of a late record: `headers` plus the operator, its time and each window it
/// missed.
fn late_headers(operator: &str, time: i64, missed: &[Window], mut headers: Headers) -> Headers {
    headers.push((
        LATE_OPERATOR_HEADER.to_owned(),
        operator.as_bytes().to_vec(),
    ));
    headers.push((
        LATE_OPERATOR_TIME_HEADER.to_owned(),
        time.to_string().into_bytes(),
    ));
    for window in missed {
        headers.push((
            LATE_WINDOW_HEADER.to_owned(),
            format!("{},{}", window.start, window.end).into_bytes(),
        ));
    }
    headers
}

impl<K: Data, V: Data, A: Data> WindowAggregate<K, V, A> {
    /// Emits (when final-only) every window that closed by the operator's time and was not
    /// emitted yet, read back from the store in start order; drops expired segments; records
    /// the progress.
    fn close_and_expire(
        &mut self,
        store: &mut WindowStore<'_, K, A>,
        progress: &mut WindowProgress,
    ) -> Result<Vec<(i64, K, A)>, ProcessError> {
        let close = progress
            .observed_time
            .saturating_sub(self.windows.grace_ms());
        let mut finals = Vec::new();
        if self.emit == Emit::OnWindowClose {
            let through = self.windows.last_end_at_or_before(close);
            if through > progress.emitted_through {
                let size = self.windows.size_ms();
                let from = match progress.emitted_through {
                    i64::MIN => i64::MIN,
                    done => done.saturating_sub(size).saturating_add(1),
                };
                let to = through.saturating_sub(size).saturating_add(1);
                finals = store.starting_between(from, to)?;
                progress.emitted_through = through;
            }
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
        let mut store = ctx.window_store::<K, A>(&self.store)?;
        let mut progress = store.progress(PROGRESS)?;
        progress.observed_time = progress.observed_time.max(time);
        let finals = self.close_and_expire(&mut store, &mut progress)?;
        self.forward_finals(ctx, finals);
        Ok(())
    }

    fn forward_finals(
        &self,
        ctx: &mut ProcessorContext<'_, Windowed<K>, Option<A>>,
        finals: Vec<(i64, K, A)>,
    ) {
        for (start, key, value) in finals {
            let end = start.saturating_add(self.windows.size_ms());
            ctx.forward(Record::new(
                Windowed {
                    key,
                    window: Window { start, end },
                },
                Some(value),
                // The last millisecond inside the window.
                end.saturating_sub(1),
            ));
        }
    }
}

impl<K: Data, V: Data, A: Data> Processor for WindowAggregate<K, V, A> {
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
        let mut store = ctx.window_store::<K, A>(&self.store)?;
        let mut progress = store.progress(PROGRESS)?;
        progress.observed_time = progress.observed_time.max(record.timestamp);
        let close = progress
            .observed_time
            .saturating_sub(self.windows.grace_ms());

        let mut updates = Vec::new();
        let mut missed = Vec::new();
        for window in self.windows.windows_for(record.timestamp) {
            if window.end <= close {
                missed.push(window);
                continue;
            }
            let next = match store.get(&record.key, window.start)? {
                Some(current) => (self.fold)(&record.key, record.value.clone(), current),
                None => (self.first)(&record.key, record.value.clone()),
            };
            store.put(&record.key, window.start, &next)?;
            if self.emit == Emit::OnUpdate {
                updates.push((window, next));
            }
        }
        let finals = self.close_and_expire(&mut store, &mut progress)?;
        self.idle
            .note_input(ctx.wall_clock_time(), progress.observed_time);
        self.forward_finals(ctx, finals);
        for (window, value) in updates {
            ctx.forward(Record {
                key: Windowed {
                    key: record.key.clone(),
                    window,
                },
                value: Some(value),
                timestamp: record.timestamp,
                headers: record.headers.clone(),
            });
        }
        if !missed.is_empty() {
            let sink = self.late_sink.as_deref();
            route_late(ctx, sink, progress.observed_time, &missed, record);
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
            .window_store::<K, A>(&self.store)?
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
