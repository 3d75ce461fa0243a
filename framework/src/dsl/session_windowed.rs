//! Session-windowed grouped streams: count, reduce and aggregate per key and session, with
//! an emit mode and a late-record policy.

use std::sync::Arc;

use super::idle::IdleClock;
use super::processors::{FirstFn, FoldFn};
use super::session_aggregate::{MergeFn, SessionAggregate};
use super::windows::{Emit, SessionWindows, Windowed};
use super::{KGroupedStream, KTable};
use crate::processor::Data;
use crate::serde::{I64Serde, Serde};
use crate::state::StoreBuilder;

/// A grouped stream cut into sessions, ready to aggregate.
///
/// With [`Emit::OnUpdate`] each record forwards its session's new aggregate, preceded by a
/// deletion (`None`) for every session it merged away; with [`Emit::OnWindowClose`] each
/// session is forwarded once, when it is final.
///
/// ```
/// use std::time::Duration;
/// use eddy::prelude::*;
///
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("clicks", StringSerde, UnitSerde)
///     .group_by_key(StringSerde, UnitSerde)
///     .windowed_by_sessions(
///         SessionWindows::with_gap(Duration::from_secs(30)).grace(Duration::from_secs(30)),
///     )
///     .count("sessions")
///     .to_stream()
///     .to("sessions", WindowedSerde::new(StringSerde), Nullable(I64Serde));
/// let mut driver = TopologyTestDriver::new(builder.build()?)?;
/// let user = "u".to_owned();
/// for at in [0, 40_000, 20_000] {
///     driver.pipe_input("clicks", &StringSerde, &UnitSerde, &user, &(), at)?;
/// }
/// let out = driver.read_output("sessions", &WindowedSerde::new(StringSerde), &Nullable(I64Serde))?;
/// let changes: Vec<(i64, i64, Option<i64>)> =
///     out.iter().map(|r| (r.key.window.start, r.key.window.end, r.value)).collect();
/// // 20 000 bridges [0, 0] and [40 000, 40 000]: both are deleted, [0, 40 000] counts 3.
/// assert_eq!(changes, vec![
///     (0, 0, Some(1)),
///     (40_000, 40_000, Some(1)),
///     (0, 0, None),
///     (40_000, 40_000, None),
///     (0, 40_000, Some(3)),
/// ]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SessionWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SessionWindows,
    emit: Emit,
    late_topic: Option<String>,
    idle_after: Option<std::time::Duration>,
}

impl<K, V> std::fmt::Debug for SessionWindowedKStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionWindowedKStream")
            .field("windows", &self.windows)
            .field("emit", &self.emit)
            .field("late_topic", &self.late_topic)
            .finish()
    }
}

impl<K: Data, V: Data> SessionWindowedKStream<K, V> {
    pub(super) fn new(grouped: KGroupedStream<K, V>, windows: SessionWindows) -> Self {
        SessionWindowedKStream {
            grouped,
            windows,
            emit: Emit::OnUpdate,
            late_topic: None,
            idle_after: None,
        }
    }

    /// When results go downstream: every update (default) or one final result per session.
    #[must_use]
    pub fn emit(mut self, emit: Emit) -> Self {
        self.emit = emit;
        self
    }

    /// Writes late records to `topic`, as
    /// [`TimeWindowedKStream::late_records_to`](super::TimeWindowedKStream::late_records_to)
    /// does (without window headers: a late record has no session).
    #[must_use]
    pub fn late_records_to(mut self, topic: &str) -> Self {
        self.late_topic = Some(topic.to_owned());
        self
    }

    /// Lets the operator's time flow with the wall clock once its input has been idle for
    /// `after`, as [`TimeWindowedKStream::advance_when_idle`](super::TimeWindowedKStream::advance_when_idle)
    /// does, so that sessions end when input stops.
    #[must_use]
    pub fn advance_when_idle(mut self, after: std::time::Duration) -> Self {
        self.idle_after = Some(after);
        self
    }

    /// Counts records per key and session into session store `store`.
    pub fn count(&self, store: &str) -> KTable<Windowed<K>, i64> {
        self.aggregate(store, || 0_i64, |_, _, n| n + 1, |_, a, b| a + b, I64Serde)
    }

    /// Combines values per key and session with `reduce` (also used to merge sessions).
    pub fn reduce(
        &self,
        store: &str,
        reduce: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, V> {
        let reduce = Arc::new(reduce);
        let merge = Arc::clone(&reduce);
        let value_serde = Arc::clone(&self.grouped.value_serde);
        self.aggregate_inner(
            store,
            Arc::new(|_: &K, v: V| v),
            Arc::new(move |_: &K, v: V, acc: V| reduce(acc, v)),
            Arc::new(move |_: &K, a: V, b: V| merge(a, b)),
            value_serde,
        )
    }

    /// Folds values per key and session into an aggregate of type `A`, starting from
    /// `init`; `merge` combines the aggregates of two sessions a record joins (earlier
    /// session first).
    pub fn aggregate<A: Data>(
        &self,
        store: &str,
        init: impl Fn() -> A + Send + Sync + 'static,
        fold: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        merge: impl Fn(&K, A, A) -> A + Send + Sync + 'static,
        aggregate_serde: impl Serde<A>,
    ) -> KTable<Windowed<K>, A> {
        let fold: FoldFn<K, V, A> = Arc::new(fold);
        let fold_first = Arc::clone(&fold);
        self.aggregate_inner(
            store,
            Arc::new(move |k: &K, v: V| fold_first(k, v, init())),
            fold,
            Arc::new(merge),
            aggregate_serde,
        )
    }

    fn aggregate_inner<A: Data>(
        &self,
        store: &str,
        first: FirstFn<K, V, A>,
        fold: FoldFn<K, V, A>,
        merge: MergeFn<K, A>,
        aggregate_serde: impl Serde<A>,
    ) -> KTable<Windowed<K>, A> {
        let store_def = StoreBuilder::session(
            store,
            self.grouped.kind,
            Arc::clone(&self.grouped.key_serde),
            aggregate_serde,
            self.windows.retention_ms(),
        );
        let (windows, emit, store_name) = (self.windows, self.emit, store.to_owned());
        let idle = IdleClock::new(self.idle_after);
        self.grouped.windowed_operator(
            store_def,
            "session-aggregate",
            self.late_topic.as_ref(),
            move |late_sink| SessionAggregate {
                store: store_name.clone(),
                windows,
                emit,
                late_sink,
                first: Arc::clone(&first),
                fold: Arc::clone(&fold),
                merge: Arc::clone(&merge),
                idle,
                dropped_below: i64::MIN,
            },
        )
    }
}
