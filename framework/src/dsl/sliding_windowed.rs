//! Sliding-windowed grouped streams: count, reduce and aggregate per key over every set of
//! records at most the window size apart, with an emit mode and a late-record policy.

use std::sync::Arc;

use super::idle::IdleClock;
use super::internal_serdes::ListSerde;
use super::processors::{aggregating, counting, reducing, Folding};
use super::sliding_aggregate::SlidingAggregate;
use super::windows::{Emit, SlidingWindows, Windowed};
use super::{KGroupedStream, KTable};
use crate::processor::Data;
use crate::serde::{I64Serde, Serde};
use crate::state::StoreBuilder;

/// A grouped stream in sliding windows, ready to aggregate. Results are keyed by
/// [`Windowed`] with both ends of the window inclusive.
///
/// ```
/// use std::time::Duration;
/// use eddy::prelude::*;
///
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("payments", StringSerde, UnitSerde)
///     .group_by_key(StringSerde, UnitSerde)
///     .windowed_by_sliding(SlidingWindows::of(Duration::from_secs(10)))
///     .count("payments-10s")
///     .to_stream()
///     .to("payments-10s", WindowedSerde::new(StringSerde), Nullable(I64Serde));
/// let mut driver = TopologyTestDriver::new(builder.build()?)?;
/// let card = "card".to_owned();
/// for at in [100_000, 105_000, 112_000] {
///     driver.pipe_input("payments", &StringSerde, &UnitSerde, &card, &(), at)?;
/// }
/// let out = driver.read_output("payments-10s", &WindowedSerde::new(StringSerde), &Nullable(I64Serde))?;
/// // The window ending at 112 000 holds 105 000 and 112 000: two payments in 10 s.
/// let ending = out.iter().filter(|r| r.key.window.end == 112_000).map(|r| r.value);
/// assert_eq!(ending.collect::<Vec<_>>(), [Some(2)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SlidingWindowedKStream<K, V> {
    grouped: KGroupedStream<K, V>,
    windows: SlidingWindows,
    emit: Emit,
    late_topic: Option<String>,
    idle_after: Option<std::time::Duration>,
}

impl<K, V> std::fmt::Debug for SlidingWindowedKStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlidingWindowedKStream")
            .field("windows", &self.windows)
            .field("emit", &self.emit)
            .field("late_topic", &self.late_topic)
            .field("idle_after", &self.idle_after)
            .finish()
    }
}

impl<K: Data, V: Data> SlidingWindowedKStream<K, V> {
    pub(super) fn new(grouped: KGroupedStream<K, V>, windows: SlidingWindows) -> Self {
        SlidingWindowedKStream {
            grouped,
            windows,
            emit: Emit::OnUpdate,
            late_topic: None,
            idle_after: None,
        }
    }

    /// When results go downstream: every update (default) or one final result per window
    /// once it closes.
    #[must_use]
    pub fn emit(mut self, emit: Emit) -> Self {
        self.emit = emit;
        self
    }

    /// Writes records older than the operator's time minus grace to `topic`, with the
    /// headers of [`TimeWindowedKStream::late_records_to`](super::TimeWindowedKStream::late_records_to);
    /// either way they are counted in `eddy_late_records_total`.
    #[must_use]
    pub fn late_records_to(mut self, topic: &str) -> Self {
        self.late_topic = Some(topic.to_owned());
        self
    }

    /// Lets the operator's time flow with the wall clock once its input has been idle for
    /// `after`, as [`TimeWindowedKStream::advance_when_idle`](super::TimeWindowedKStream::advance_when_idle)
    /// does: windows close and final results come out when input stops. Off by default.
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
        let size = self.windows.size_ms();
        let grace = self.windows.grace_ms();
        // Windows stay until they closed (size plus grace past their start); records while
        // a window they could join may still be made (twice the size plus grace).
        let aggregates = StoreBuilder::window(
            store,
            self.grouped.kind,
            Arc::clone(&self.grouped.key_serde),
            aggregate_serde,
            size.saturating_add(grace).saturating_add(1),
        );
        let records_store = format!("{store}-records");
        let records = StoreBuilder::session(
            &records_store,
            self.grouped.kind,
            Arc::clone(&self.grouped.key_serde),
            ListSerde::new(Arc::clone(&self.grouped.value_serde)),
            size.saturating_mul(2)
                .saturating_add(grace)
                .saturating_add(2),
        );
        let (windows, emit, store_name) = (self.windows, self.emit, store.to_owned());
        let idle = IdleClock::new(self.idle_after);
        self.grouped.windowed_operator_with(
            vec![aggregates, records],
            "sliding-aggregate",
            self.late_topic.as_ref(),
            move |late_sink| SlidingAggregate {
                store: store_name.clone(),
                records: records_store.clone(),
                windows,
                emit,
                late_sink,
                first: Arc::clone(&first),
                fold: Arc::clone(&fold),
                idle,
                dropped_below: (i64::MIN, i64::MIN),
            },
        )
    }
}
