//! Windowed grouped streams: count, reduce and aggregate per key and time window, with an
//! emit mode and a late-record policy.

use std::sync::Arc;

use super::idle::IdleClock;
use super::processors::{aggregating, counting, reducing, Folding};
use super::window_aggregate::WindowAggregate;
use super::windows::{Emit, TimeWindows, Windowed};
use super::{KGroupedStream, KTable};
use crate::processor::Data;
use crate::serde::{I64Serde, Serde};
use crate::state::StoreBuilder;

/// A grouped stream cut into time windows, ready to aggregate.
///
/// ```
/// use std::time::Duration;
/// use eddy::prelude::*;
///
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("clicks", StringSerde, UnitSerde)
///     .group_by_key(StringSerde, UnitSerde)
///     .windowed_by(TimeWindows::of(Duration::from_secs(60)).grace(Duration::from_secs(5)))
///     .emit(Emit::OnWindowClose)
///     .late_records_to("clicks-late")
///     .count("clicks-per-minute")
///     .to_stream()
///     .to("clicks-per-minute", WindowedSerde::new(StringSerde), Nullable(I64Serde));
/// let mut driver = TopologyTestDriver::new(builder.build()?)?;
/// let user = "u".to_owned();
/// for at in [1_000, 30_000, 59_999, 66_000] {
///     driver.pipe_input("clicks", &StringSerde, &UnitSerde, &user, &(), at)?;
/// }
/// // 66 000 closes [0, 60 000) (end plus 5 s grace): one final count.
/// let out = driver.read_output("clicks-per-minute", &WindowedSerde::new(StringSerde), &I64Serde)?;
/// assert_eq!(out.len(), 1);
/// assert_eq!((out[0].key.window.start, out[0].value), (0, 3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TimeWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: TimeWindows,
    emit: Emit,
    late_topic: Option<String>,
    idle_after: Option<std::time::Duration>,
}

impl<K, V> std::fmt::Debug for TimeWindowedKStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeWindowedKStream")
            .field("windows", &self.windows)
            .field("emit", &self.emit)
            .field("late_topic", &self.late_topic)
            .finish()
    }
}

impl<K: Data, V: Data> TimeWindowedKStream<K, V> {
    pub(super) fn new(grouped: KGroupedStream<K, V>, windows: TimeWindows) -> Self {
        TimeWindowedKStream {
            grouped,
            windows,
            emit: Emit::OnUpdate,
            late_topic: None,
            idle_after: None,
        }
    }

    /// When results go downstream: every update (default) or one final result per window.
    #[must_use]
    pub fn emit(mut self, emit: Emit) -> Self {
        self.emit = emit;
        self
    }

    /// Writes records that arrive after their windows closed to `topic` (in the same
    /// transaction as everything else), unchanged but for headers naming the operator
    /// (`eddy-late-operator`), its time (`eddy-late-operator-time`) and each window missed
    /// (`eddy-late-window`: `start,end`). Without a late topic they are dropped; either way
    /// they are counted in `eddy_late_records_total`.
    #[must_use]
    pub fn late_records_to(mut self, topic: &str) -> Self {
        self.late_topic = Some(topic.to_owned());
        self
    }

    /// Lets the operator's time flow with the wall clock once its input has been idle for
    /// `after`, as if event time kept passing at wall-clock speed since the last record, so
    /// that windows close and final results come out when input stops (nobody has to send
    /// fake future records). Off by default: with it on, results depend on when input
    /// paused, not only on the input. Each advance is counted in `eddy_idle_advances_total`,
    /// and is committed like any other progress of the operator.
    #[must_use]
    pub fn advance_when_idle(mut self, after: std::time::Duration) -> Self {
        self.idle_after = Some(after);
        self
    }

    /// Counts records per key and window into window store `store`.
    pub fn count(&self, store: &str) -> KTable<Windowed<K>, i64> {
        self.aggregate_inner(store, counting(), I64Serde)
    }

    /// Combines values per key and window with `reduce` into window store `store`.
    pub fn reduce(
        &self,
        store: &str,
        reduce: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, V> {
        let value_serde = Arc::clone(&self.grouped.value_serde);
        self.aggregate_inner(store, reducing(reduce), value_serde)
    }

    /// Folds values per key and window into an aggregate of type `A`, starting from `init`,
    /// stored in window store `store` with `aggregate_serde`.
    pub fn aggregate<A: Data>(
        &self,
        store: &str,
        init: impl Fn() -> A + Send + Sync + 'static,
        fold: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        aggregate_serde: impl Serde<A>,
    ) -> KTable<Windowed<K>, A> {
        self.aggregate_inner(store, aggregating(init, fold), aggregate_serde)
    }

    fn aggregate_inner<A: Data>(
        &self,
        store: &str,
        (first, fold): Folding<K, V, A>,
        aggregate_serde: impl Serde<A>,
    ) -> KTable<Windowed<K>, A> {
        let store_def = StoreBuilder::window(
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
            "window-aggregate",
            self.late_topic.as_ref(),
            move |late_sink| WindowAggregate {
                store: store_name.clone(),
                windows,
                emit,
                late_sink,
                first: Arc::clone(&first),
                fold: Arc::clone(&fold),
                idle,
                dropped_below: i64::MIN,
            },
        )
    }
}
