//! Foreign-key table-table joins: each row of the left table joins the right table's row
//! whose key the left value names, over three sub-topologies.
//!
//! ```text
//!  left table ──► left-side ──subscriptions topic (by foreign key)──► subscribe ─┐
//!  (by key K)        │                                                 right table ├─► results topic
//!                    └── deletions, rows without a foreign key ──────────────────────┘  (by key K)
//!                                                                                  │
//!                                                      result table ◄── results ◄──┘
//! ```
//!
//! The left side keeps, per key, a version that grows with every change and the foreign
//! key it subscribed with. It sends the key, version and left value to the right side's
//! partition of the foreign key; the right side keeps the subscriptions by (foreign key,
//! key), joins each with the right row on arrival and again whenever that row changes, and
//! sends the result with the subscription's version. A change of foreign key unsubscribes
//! at the old one and tells the results side the new version, so results of the old
//! subscription still in flight from the other partition are dropped by version. The left
//! side answers deletions and rows without a foreign key itself. No sub-topology reads its
//! own output: savepoint drains and bounded runs see the join settle level by level.

use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::foreign_key_processors::{
    ForeignKey, LeftSide, Results, RightChanges, RightSide, RowChange, RowChangeSerde, Subscribe,
    Subscription,
};
use super::internal_serdes::{FieldSerde, PairSerde, Versioned, VersionedSerde};
use super::join::Joiner;
use super::{KStream, KTable};
use crate::processor::Data;
use crate::serde::{Nullable, Serde, UnitSerde};
use crate::state::StoreBuilder;
use crate::topology::TopicRef;

impl<K: Data, VL: Data> KTable<K, VL> {
    /// Foreign-key join: each row of this table joins the row of `other` whose key
    /// `foreign_key` reads from its value (inner: a row while the foreign key is `Some` and
    /// `other` holds it). The result is a table keyed like this one, kept in key-value store
    /// `store` with `value_serde`; a change on either side updates the rows it concerns, and
    /// a row that stops existing is deleted downstream.
    ///
    /// The tables need not be co-partitioned: subscriptions travel to `other`'s partitions
    /// through internal topic `<application.id>-<store>-fk-subscriptions-repartition` and
    /// results come back through `<store>-fk-results-repartition` (see ARCHITECTURE.md).
    /// Both tables must be materialized (from a topic or an aggregation), not versioned, and
    /// come from different sub-topologies; `other`'s task reads its topic with the
    /// subscriptions, which needs `processing.group_protocol = consumer`.
    ///
    /// ```
    /// use eddy::prelude::*;
    ///
    /// let builder = StreamsBuilder::new();
    /// let orders = builder.table("orders", StringSerde, StringSerde, "orders"); // id → customer
    /// let customers = builder.table("customers", StringSerde, StringSerde, "customers");
    /// orders
    ///     .join_foreign_key(
    ///         &customers,
    ///         "order-regions",
    ///         |customer: &String| Some(customer.clone()),
    ///         StringSerde,
    ///         |customer: &String, region: &String| format!("{customer}@{region}"),
    ///     )
    ///     .to_stream()
    ///     .to("order-regions", StringSerde, Nullable(StringSerde));
    /// let mut driver = TopologyTestDriver::new(builder.build()?)?;
    /// driver.pipe_raw("customers", Some(b"ann"), Some(b"eu"), 1)?;
    /// driver.pipe_raw("orders", Some(b"o1"), Some(b"ann"), 2)?;
    /// driver.pipe_raw("customers", Some(b"ann"), Some(b"us"), 3)?;
    /// driver.pipe_raw("orders", Some(b"o1"), None, 4)?;
    /// let out = driver.read_output("order-regions", &StringSerde, &Nullable(StringSerde))?;
    /// let values: Vec<Option<String>> = out.into_iter().map(|r| r.value).collect();
    /// assert_eq!(
    ///     values,
    ///     vec![Some("ann@eu".to_owned()), Some("ann@us".to_owned()), None]
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn join_foreign_key<KO: Data + PartialEq, VR: Data, VJ: Data>(
        &self,
        other: &KTable<KO, VR>,
        store: &str,
        foreign_key: impl Fn(&VL) -> Option<KO> + Send + Sync + 'static,
        value_serde: impl Serde<VJ>,
        joiner: impl Fn(&VL, &VR) -> VJ + Send + Sync + 'static,
    ) -> KTable<K, VJ> {
        let joiner: Joiner<VL, VR, VJ> = Arc::new(move |l, r| Some(joiner(l, r?)));
        self.foreign_key_join(other, store, Arc::new(foreign_key), value_serde, joiner)
    }

    /// Left foreign-key join: a row while this table holds the key, with `None` for the
    /// right value when the foreign key is `None` or `other` does not hold it. As
    /// [`join_foreign_key`](Self::join_foreign_key) otherwise.
    pub fn left_join_foreign_key<KO: Data + PartialEq, VR: Data, VJ: Data>(
        &self,
        other: &KTable<KO, VR>,
        store: &str,
        foreign_key: impl Fn(&VL) -> Option<KO> + Send + Sync + 'static,
        value_serde: impl Serde<VJ>,
        joiner: impl Fn(&VL, Option<&VR>) -> VJ + Send + Sync + 'static,
    ) -> KTable<K, VJ> {
        let joiner: Joiner<VL, VR, VJ> = Arc::new(move |l, r| Some(joiner(l, r)));
        self.foreign_key_join(other, store, Arc::new(foreign_key), value_serde, joiner)
    }

    fn foreign_key_join<KO: Data + PartialEq, VR: Data, VJ: Data>(
        &self,
        other: &KTable<KO, VR>,
        store: &str,
        foreign_key: ForeignKey<VL, KO>,
        value_serde: impl Serde<VJ>,
        joiner: Joiner<VL, VR, VJ>,
    ) -> KTable<K, VJ> {
        let shared = Rc::clone(&self.to_stream().state);
        let broken = || KTable::new(KStream::new(Rc::clone(&shared), store.to_owned(), false));
        let mut state = shared.borrow_mut();
        let builder = &mut state.builder;
        let (Some(left), Some(right)) = (self.store.clone(), other.store.clone()) else {
            builder.note_problem(format!(
                "foreign-key join `{store}`: both tables must be materialized (from a topic or an aggregation), not filtered or mapped"
            ));
            drop(state);
            return broken();
        };
        let serdes = (
            builder
                .store(&left)
                .and_then(|s| s.key_serde_as::<K>().cloned()),
            builder
                .store(&left)
                .and_then(|s| s.value_serde_as::<VL>().cloned()),
            builder
                .store(&right)
                .and_then(|s| s.key_serde_as::<KO>().cloned()),
        );
        let (Some(key_serde), Some(left_serde), Some(foreign_serde)) = serdes else {
            builder.note_problem(format!(
                "foreign-key join `{store}`: the serdes of stores `{left}` and `{right}` are unknown"
            ));
            drop(state);
            return broken();
        };
        if self.versioned || other.versioned {
            builder.note_problem(format!(
                "foreign-key join `{store}`: joining versioned tables is not supported; join their latest values through tables without history"
            ));
            drop(state);
            return broken();
        }
        let value_serde: Arc<dyn Serde<VJ>> = Arc::new(value_serde);
        let subscription_serde: Arc<dyn Serde<Subscription<K, VL>>> =
            Arc::new(VersionedSerde(Arc::new(PairSerde::new(
                Arc::clone(&key_serde),
                Arc::new(Nullable(Arc::clone(&left_serde))),
            ))));
        let result_serde: Arc<dyn Serde<Versioned<RowChange<VJ>>>> = Arc::new(VersionedSerde(
            Arc::new(RowChangeSerde(Arc::clone(&value_serde))),
        ));
        let subscriptions_topic =
            TopicRef::internal(&format!("{store}-fk-subscriptions-repartition"));
        let results_topic = TopicRef::internal(&format!("{store}-fk-results-repartition"));
        for (topic, like) in [(&subscriptions_topic, &right), (&results_topic, &left)] {
            if let TopicRef::Internal(name) = topic {
                builder.repartition_like_store(name, like);
            }
        }

        // The left table's sub-topology.
        let left_state = format!("{store}-fk-left");
        builder.add_store(StoreBuilder::rocksdb(
            &left_state,
            Arc::clone(&key_serde),
            VersionedSerde(Arc::new(Nullable(Arc::clone(&foreign_serde)))),
        ));
        let left_node = format!("{store}-fk-left");
        let (fk, left_joiner) = (foreign_key, Arc::clone(&joiner));
        let (subscriptions_sink, left_results_sink) = (
            format!("{store}-fk-left-subscriptions"),
            format!("{store}-fk-left-results"),
        );
        let (sink_a, sink_b, state_name) = (
            subscriptions_sink.clone(),
            left_results_sink.clone(),
            left_state.clone(),
        );
        builder.add_processor(
            &left_node,
            move || LeftSide::<K, VL, KO, VJ> {
                state: state_name.clone(),
                foreign_key: Arc::clone(&fk),
                joiner: {
                    let j = Arc::clone(&left_joiner);
                    Arc::new(move |l, _| j(l, None))
                },
                subscriptions: sink_a.clone(),
                results: sink_b.clone(),
                _types: PhantomData,
            },
            &[self.to_stream().node()],
            &[&left_state],
        );
        builder.add_side_sink(
            &subscriptions_sink,
            subscriptions_topic.clone(),
            Arc::clone(&foreign_serde),
            Arc::clone(&subscription_serde),
            &left_node,
        );
        builder.add_side_sink(
            &left_results_sink,
            results_topic.clone(),
            Arc::clone(&key_serde),
            Arc::clone(&result_serde),
            &left_node,
        );

        // The right table's sub-topology.
        let subscriptions_store = format!("{store}-fk-subscriptions");
        builder.add_store(StoreBuilder::rocksdb(
            &subscriptions_store,
            PairSerde::new(Arc::clone(&foreign_serde), Arc::clone(&key_serde)),
            VersionedSerde(Arc::clone(&left_serde)),
        ));
        let subscriptions_source = format!("{store}-fk-subscriptions-source");
        builder.add_source(
            &subscriptions_source,
            subscriptions_topic,
            Arc::clone(&foreign_serde),
            subscription_serde,
        );
        let side = |results: &str| RightSide::<K, VL, KO, VR, VJ> {
            subscriptions: subscriptions_store.clone(),
            right: right.clone(),
            results: results.to_owned(),
            joiner: Arc::clone(&joiner),
            _types: PhantomData,
        };
        let (subscribe_node, right_node) =
            (format!("{store}-fk-subscribe"), format!("{store}-fk-right"));
        let subscribe_side = side(&format!("{subscribe_node}-results"));
        builder.add_processor(
            &subscribe_node,
            move || Subscribe(subscribe_side.clone()),
            &[&subscriptions_source],
            &[&subscriptions_store, &right],
        );
        let right_side = side(&format!("{right_node}-results"));
        let prefix = Arc::new(FieldSerde(Arc::clone(&foreign_serde)));
        builder.add_processor(
            &right_node,
            move || RightChanges {
                side: right_side.clone(),
                prefix: Arc::clone(&prefix),
            },
            &[other.to_stream().node()],
            &[&subscriptions_store],
        );
        for node in [&subscribe_node, &right_node] {
            builder.add_side_sink(
                &format!("{node}-results"),
                results_topic.clone(),
                Arc::clone(&key_serde),
                Arc::clone(&result_serde),
                node,
            );
        }

        // The results' sub-topology.
        let versions = format!("{store}-fk-versions");
        builder.add_store(StoreBuilder::rocksdb(
            store,
            Arc::clone(&key_serde),
            Arc::clone(&value_serde),
        ));
        builder.add_store(StoreBuilder::rocksdb(
            &versions,
            Arc::clone(&key_serde),
            VersionedSerde(Arc::new(UnitSerde)),
        ));
        let results_source = format!("{store}-fk-results-source");
        builder.add_source(&results_source, results_topic, key_serde, result_serde);
        let join_node = format!("{store}-fk-join");
        let (result_store, versions_store) = (store.to_owned(), versions.clone());
        builder.add_processor(
            &join_node,
            move || Results::<K, VJ> {
                store: result_store.clone(),
                versions: versions_store.clone(),
                _types: PhantomData,
            },
            &[&results_source],
            &[store, &versions],
        );
        drop(state);
        KTable::materialized(KStream::new(shared, join_node, false), store)
    }
}

/// Orders (id → customer, "" for none) left-joined by foreign key with customers (id →
/// region) into store `joined`, written to `out`: the topology the unit tests share.
#[cfg(test)]
pub(crate) fn orders_by_customer() -> crate::topology::Topology {
    use crate::serde::StringSerde;
    let builder = super::StreamsBuilder::new();
    let orders = builder.table("orders", StringSerde, StringSerde, "orders");
    let customers = builder.table("customers", StringSerde, StringSerde, "customers");
    orders
        .left_join_foreign_key(
            &customers,
            "joined",
            |c: &String| Some(c.clone()).filter(|c| !c.is_empty()),
            StringSerde,
            |o: &String, region: Option<&String>| region.unwrap_or(o).clone(),
        )
        .to_stream()
        .to("out", StringSerde, Nullable(StringSerde));
    match builder.build() {
        Ok(topology) => topology,
        Err(e) => panic!("the shared test topology is valid: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serde::StringSerde;
    use crate::test_driver::{TopologyTestDriver, TEST_APPLICATION_ID};

    #[test]
    fn a_key_that_changes_foreign_key_unsubscribes_from_the_old_one() {
        let mut driver = TopologyTestDriver::new(orders_by_customer()).unwrap();
        let subscription = |d: &mut TopologyTestDriver, customer: &str| {
            d.store_get::<(String, String), Versioned<String>>(
                "joined-fk-subscriptions",
                &(customer.to_owned(), "o1".to_owned()),
            )
            .unwrap()
        };
        driver
            .pipe_raw("orders", Some(b"o1"), Some(b"ann"), 1)
            .unwrap();
        assert_eq!(
            subscription(&mut driver, "ann"),
            Some(Versioned {
                version: 1,
                value: "ann".to_owned()
            })
        );
        driver
            .pipe_raw("orders", Some(b"o1"), Some(b"bob"), 2)
            .unwrap();
        assert_eq!(
            subscription(&mut driver, "ann"),
            None,
            "moved away from ann"
        );
        assert_eq!(subscription(&mut driver, "bob").map(|s| s.version), Some(2));
        driver
            .pipe_raw("orders", Some(b"o1"), Some(b""), 3)
            .unwrap();
        assert_eq!(
            subscription(&mut driver, "bob"),
            None,
            "no foreign key any more"
        );
        driver
            .pipe_raw("orders", Some(b"o1"), Some(b"bob"), 4)
            .unwrap();
        driver.pipe_raw("orders", Some(b"o1"), None, 5).unwrap();
        assert_eq!(subscription(&mut driver, "bob"), None, "deleted");
    }

    #[test]
    fn results_of_a_subscription_the_key_has_left_are_dropped_by_version() {
        let mut driver = TopologyTestDriver::new(orders_by_customer()).unwrap();
        let serde = VersionedSerde(Arc::new(RowChangeSerde(
            Arc::new(StringSerde) as Arc<dyn Serde<String>>
        )) as Arc<dyn Serde<_>>);
        let topic = format!("{TEST_APPLICATION_ID}-joined-fk-results-repartition");
        // Results as they may interleave when o1 moved from one customer's partition to
        // another's: version 2 announced, then late results of version 1.
        let arrivals = [
            (2, RowChange::Pending),
            (1, RowChange::Row(Some("old".to_owned()))),
            (2, RowChange::Row(Some("new".to_owned()))),
            (1, RowChange::Row(None)),
            (2, RowChange::Row(Some("newer".to_owned()))),
            (3, RowChange::Row(None)),
        ];
        for (version, value) in arrivals {
            let bytes = serde.serialize(&Versioned { version, value }).unwrap();
            driver
                .pipe_raw(&topic, Some(b"o1"), bytes.as_deref(), 0)
                .unwrap();
        }
        let out: Vec<Option<String>> = driver
            .read_output("out", &StringSerde, &Nullable(StringSerde))
            .unwrap()
            .into_iter()
            .map(|r| r.value)
            .collect();
        assert_eq!(
            out,
            [Some("new".to_owned()), Some("newer".to_owned()), None],
            "version 1 arrived after version 2 was announced: dropped"
        );
    }
}
