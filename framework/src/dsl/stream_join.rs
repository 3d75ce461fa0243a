//! Windowed stream-stream joins in the DSL: inner, left and outer, with join windows and a
//! grace period.

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::internal_serdes::ListSerde;
use super::stream_join_processor::{JoinStores, PairJoiner, Side, StreamJoin};
use super::KStream;
use crate::processor::Data;
use crate::serde::Serde;
use crate::state::StoreBuilder;

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Which records of two streams join: a left record at `t` meets right records of the same
/// key with timestamps in `[t - before, t + after]` (both ends inclusive).
///
/// A record older than the operator's time (the largest timestamp the join has seen) minus
/// the grace period is late: counted in `eddy_late_records_total` and not joined. Left and
/// outer joins emit a record without a partner only once no on-time record can match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinWindows {
    before_ms: i64,
    after_ms: i64,
    grace_ms: i64,
}

impl JoinWindows {
    /// Records at most `difference` apart join, either way; no grace period.
    pub fn of(difference: Duration) -> Self {
        let ms = millis(difference);
        JoinWindows {
            before_ms: ms,
            after_ms: ms,
            grace_ms: 0,
        }
    }

    /// How far before a left record a right record may be.
    #[must_use]
    pub fn before(mut self, before: Duration) -> Self {
        self.before_ms = millis(before);
        self
    }

    /// How far after a left record a right record may be.
    #[must_use]
    pub fn after(mut self, after: Duration) -> Self {
        self.after_ms = millis(after);
        self
    }

    /// How far behind the join's time a record may be and still join.
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace_ms = millis(grace);
        self
    }
}

/// The serdes and name of a stream-stream join: the key and both values are buffered in
/// RocksDB stores named after the join (`<name>-left`, `<name>-right`, and for left and
/// outer joins `<name>-left-unmatched`, `<name>-right-unmatched`), so name the join.
pub struct StreamJoined<K, L, R> {
    name: String,
    key: Arc<dyn Serde<K>>,
    left: Arc<dyn Serde<L>>,
    right: Arc<dyn Serde<R>>,
}

impl<K, L, R> std::fmt::Debug for StreamJoined<K, L, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamJoined")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<K: 'static, L: 'static, R: 'static> StreamJoined<K, L, R> {
    /// A join named `name` (it keys the join's stores and their changelogs: keep it stable)
    /// with serdes for the key and both sides' values.
    pub fn new(name: &str, key: impl Serde<K>, left: impl Serde<L>, right: impl Serde<R>) -> Self {
        StreamJoined {
            name: name.to_owned(),
            key: Arc::new(key),
            left: Arc::new(left),
            right: Arc::new(right),
        }
    }
}

impl<K: Data, L: Data> KStream<K, L> {
    /// Joins records of this stream and `other` with the same key within `windows` (inner
    /// join: only pairs). Source topics read as they are must be co-partitioned; a stream whose
    /// keys may have changed (a `map`, `select_key`, ...) goes through repartition topic
    /// `<name>-left-repartition` or `<name>-right-repartition` first. Running two topics in one
    /// task needs `processing.group_protocol = consumer`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use eddy::prelude::*;
    ///
    /// let builder = StreamsBuilder::new();
    /// let views = builder.stream("views", StringSerde, StringSerde);
    /// let clicks = builder.stream("clicks", StringSerde, StringSerde);
    /// views
    ///     .join_stream(
    ///         &clicks,
    ///         JoinWindows::of(Duration::from_secs(10)),
    ///         |view: &String, click: &String| format!("{view}->{click}"),
    ///         StreamJoined::new("views-clicks", StringSerde, StringSerde, StringSerde),
    ///     )
    ///     .to("conversions", StringSerde, StringSerde);
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// let (s, u) = (StringSerde, "u".to_owned());
    /// driver.pipe_input("views", &s, &s, &u, &"ad-1".to_owned(), 1_000)?;
    /// driver.pipe_input("clicks", &s, &s, &u, &"buy".to_owned(), 9_000)?;
    /// driver.pipe_input("clicks", &s, &s, &u, &"late-buy".to_owned(), 12_000)?; // 11 s after
    /// let out = driver.read_output("conversions", &s, &s)?;
    /// assert_eq!(out.iter().map(|r| r.value.as_str()).collect::<Vec<_>>(), ["ad-1->buy"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join_stream<R: Data, VR: Data>(
        &self,
        other: &KStream<K, R>,
        windows: JoinWindows,
        joiner: impl Fn(&L, &R) -> VR + Send + Sync + 'static,
        joined: StreamJoined<K, L, R>,
    ) -> KStream<K, VR> {
        let joiner: PairJoiner<L, R, Option<VR>> = Arc::new(move |l, r| match (l, r) {
            (Some(l), Some(r)) => Some(joiner(l, r)),
            _ => None,
        });
        self.windowed_join(other, windows, joiner, joined, (false, false))
            .flattened()
    }

    /// As [`join_stream`](Self::join_stream), and each left record that no right record
    /// matched is emitted with `None` once its window (plus grace) has passed.
    pub fn left_join_stream<R: Data, VR: Data>(
        &self,
        other: &KStream<K, R>,
        windows: JoinWindows,
        joiner: impl Fn(&L, Option<&R>) -> VR + Send + Sync + 'static,
        joined: StreamJoined<K, L, R>,
    ) -> KStream<K, VR> {
        let joiner: PairJoiner<L, R, Option<VR>> = Arc::new(move |l, r| l.map(|l| joiner(l, r)));
        self.windowed_join(other, windows, joiner, joined, (true, false))
            .flattened()
    }

    /// As [`left_join_stream`](Self::left_join_stream), and unmatched right records are
    /// emitted too (with `None` for the left side).
    pub fn outer_join_stream<R: Data, VR: Data>(
        &self,
        other: &KStream<K, R>,
        windows: JoinWindows,
        joiner: impl Fn(Option<&L>, Option<&R>) -> VR + Send + Sync + 'static,
        joined: StreamJoined<K, L, R>,
    ) -> KStream<K, VR> {
        let joiner: PairJoiner<L, R, Option<VR>> = Arc::new(move |l, r| Some(joiner(l, r)));
        self.windowed_join(other, windows, joiner, joined, (true, true))
            .flattened()
    }

    /// The join node, forwarding `None` where the join kind emits nothing.
    fn windowed_join<R: Data, VR: Data>(
        &self,
        other: &KStream<K, R>,
        windows: JoinWindows,
        joiner: PairJoiner<L, R, Option<VR>>,
        joined: StreamJoined<K, L, R>,
        (unmatched_left, unmatched_right): (bool, bool),
    ) -> KStream<K, Option<VR>> {
        let name = joined.name.clone();
        // A side whose keys may have changed goes through a repartition topic first, so that
        // each key of both sides reaches one task.
        let left = self.partitioned_by_key(&format!("{name}-left"), &joined.key, &joined.left);
        let right = other.partitioned_by_key(&format!("{name}-right"), &joined.key, &joined.right);
        let left = left.map_values(Side::<L, R>::Left);
        let right = right.map_values(Side::<L, R>::Right);
        let both = left.merge(&right);
        let retention = windows
            .before_ms
            .saturating_add(windows.after_ms)
            .saturating_add(windows.grace_ms);
        let stores = JoinStores {
            left: format!("{name}-left"),
            right: format!("{name}-right"),
            left_unmatched: unmatched_left.then(|| format!("{name}-left-unmatched")),
            right_unmatched: unmatched_right.then(|| format!("{name}-right-unmatched")),
        };
        let mut state = self.state.borrow_mut();
        let kind = crate::state::StoreKind::RocksDb;
        let left_list = || ListSerde::new(Arc::clone(&joined.left));
        let right_list = || ListSerde::new(Arc::clone(&joined.right));
        let key = || Arc::clone(&joined.key);
        state.builder.add_store(StoreBuilder::session(
            &stores.left,
            kind,
            key(),
            left_list(),
            retention,
        ));
        state.builder.add_store(StoreBuilder::session(
            &stores.right,
            kind,
            key(),
            right_list(),
            retention,
        ));
        let mut names = vec![stores.left.clone(), stores.right.clone()];
        if let Some(store) = &stores.left_unmatched {
            state.builder.add_store(StoreBuilder::session(
                store,
                kind,
                key(),
                left_list(),
                retention,
            ));
            names.push(store.clone());
        }
        if let Some(store) = &stores.right_unmatched {
            state.builder.add_store(StoreBuilder::session(
                store,
                kind,
                key(),
                right_list(),
                retention,
            ));
            names.push(store.clone());
        }
        let node = format!("{name}-join");
        let store_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        state.builder.add_processor(
            &node,
            move || StreamJoin::<K, L, R, Option<VR>> {
                stores: stores.clone(),
                before_ms: windows.before_ms,
                after_ms: windows.after_ms,
                grace_ms: windows.grace_ms,
                joiner: Arc::clone(&joiner),
                dropped_below: i64::MIN,
                _types: PhantomData,
            },
            &[both.node()],
            &store_refs,
        );
        drop(state);
        KStream::new(Rc::clone(&self.state), node, false)
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    /// This stream, or when its keys may have changed since its source, the stream read back
    /// from repartition topic `<store>-repartition`, partitioned by the current key. The topic
    /// takes the partition count of the sub-topology using `store` (the join's own buffer),
    /// so it is co-partitioned with the join's other input.
    fn partitioned_by_key(
        &self,
        store: &str,
        key_serde: &Arc<dyn Serde<K>>,
        value_serde: &Arc<dyn Serde<V>>,
    ) -> KStream<K, V> {
        if !self.key_changed {
            return self.clone();
        }
        let mut state = self.state.borrow_mut();
        let source = super::stream::through_repartition(
            &mut state.builder,
            store,
            &self.node,
            Arc::clone(key_serde),
            Arc::clone(value_serde),
        );
        state
            .builder
            .repartition_like_store(&format!("{store}-repartition"), store);
        drop(state);
        KStream::new(Rc::clone(&self.state), source, false)
    }
}

impl<K: Data, V: Data> KStream<K, Option<V>> {
    /// Drops the `None`s of a join node's output.
    fn flattened(&self) -> KStream<K, V> {
        self.flat_map_values(|v: Option<V>| v)
    }
}
