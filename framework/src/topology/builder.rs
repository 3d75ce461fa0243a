//! Builds a topology node by node and validates it: names, edges, types, stores, topics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::erased::{Erased, ErasedRecord, TypeInfo};
use super::node::{DecodeError, NodeDef, NodeKind, PartitionerFn, TimestampExtractor};
use super::{TopicRef, Topology};
use crate::processor::{Data, Processor};
use crate::serde::Serde;
use crate::state::StoreBuilder;

/// The topology is invalid; every problem found is listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid topology:\n  - {}", problems.join("\n  - "))]
pub struct TopologyError {
    /// One line per problem, naming the node, store or topic concerned.
    pub problems: Vec<String>,
}

impl From<&str> for TopicRef {
    fn from(name: &str) -> Self {
        TopicRef::External(name.to_owned())
    }
}

impl From<String> for TopicRef {
    fn from(name: String) -> Self {
        TopicRef::External(name)
    }
}

impl TopicRef {
    /// An app-owned repartition topic with logical name `name`.
    pub fn internal(name: &str) -> Self {
        TopicRef::Internal(name.to_owned())
    }
}

/// Assembles sources, processors, sinks and stores into a [`Topology`].
///
/// Every name is explicit: node names order and describe the graph; store names key changelog
/// topics and snapshots, so they must stay stable across versions of an app.
#[derive(Default)]
pub struct TopologyBuilder {
    nodes: Vec<NodeDef>,
    stores: BTreeMap<String, StoreBuilder>,
    repartition_partitions: BTreeMap<String, Option<i32>>,
    repartition_like: BTreeMap<String, String>,
    table_topics: BTreeSet<TopicRef>,
    globals: Vec<std::sync::Arc<crate::state::GlobalStore>>,
    problems: Vec<String>,
}

impl std::fmt::Debug for TopologyBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopologyBuilder")
            .field(
                "nodes",
                &self.nodes.iter().map(|n| &n.name).collect::<Vec<_>>(),
            )
            .field("stores", &self.stores.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl TopologyBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a source node `name` reading `topic` with the given serdes; a record's event time
    /// is its Kafka timestamp.
    pub fn add_source<K: Data, V: Data>(
        &mut self,
        name: &str,
        topic: impl Into<TopicRef>,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
    ) -> &mut Self {
        self.add_source_inner(name, topic.into(), key_serde, value_serde, None)
    }

    /// Adds a source node whose records' event time `timestamps` makes from their key, value
    /// and Kafka timestamp. A negative event time is an invalid record, handled as one that
    /// cannot be decoded (`errors.deserialization`).
    pub fn add_source_with_timestamps<K: Data, V: Data>(
        &mut self,
        name: &str,
        topic: impl Into<TopicRef>,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        timestamps: TimestampExtractor<K, V>,
    ) -> &mut Self {
        self.add_source_inner(name, topic.into(), key_serde, value_serde, Some(timestamps))
    }

    fn add_source_inner<K: Data, V: Data>(
        &mut self,
        name: &str,
        topic: TopicRef,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        timestamps: Option<TimestampExtractor<K, V>>,
    ) -> &mut Self {
        self.note_internal(&topic);
        let decode = Arc::new(move |key: Option<&[u8]>, value: Option<&[u8]>, timestamp| {
            let serde = |part| move |source| DecodeError::Serde { part, source };
            let k = key_serde.deserialize(key).map_err(serde("key"))?;
            let v = value_serde.deserialize(value).map_err(serde("value"))?;
            let time = timestamps
                .as_ref()
                .map_or(timestamp, |extract| extract(&k, &v, timestamp));
            if time < 0 {
                return Err(DecodeError::Timestamp(time));
            }
            Ok(ErasedRecord::from_record(crate::record::Record::new(
                k, v, time,
            )))
        });
        self.push(NodeDef {
            name: name.to_owned(),
            kind: NodeKind::Source { topic, decode },
            parents: Vec::new(),
            input: None,
            output: Some((TypeInfo::of::<K>(), TypeInfo::of::<V>())),
            stores: Vec::new(),
            side_output: false,
        })
    }

    /// Adds a processor node `name` made by `supplier` for each task, fed by `parents` and
    /// allowed to use `stores`.
    pub fn add_processor<P, F>(
        &mut self,
        name: &str,
        supplier: F,
        parents: &[&str],
        stores: &[&str],
    ) -> &mut Self
    where
        P: Processor,
        F: Fn() -> P + Send + Sync + 'static,
    {
        let supplier = Arc::new(move || {
            Box::new(Erased(supplier())) as Box<dyn super::erased::ErasedProcessor>
        });
        self.push(NodeDef {
            name: name.to_owned(),
            kind: NodeKind::Processor { supplier },
            parents: parents.iter().map(|p| (*p).to_owned()).collect(),
            input: Some((TypeInfo::of::<P::KeyIn>(), TypeInfo::of::<P::ValueIn>())),
            output: Some((TypeInfo::of::<P::KeyOut>(), TypeInfo::of::<P::ValueOut>())),
            stores: stores.iter().map(|s| (*s).to_owned()).collect(),
            side_output: false,
        })
    }

    /// Adds a sink node `name` writing to `topic`, partitioned by the producer's murmur2
    /// partitioner on the key bytes (the Java client's default).
    pub fn add_sink<K: Data, V: Data>(
        &mut self,
        name: &str,
        topic: impl Into<TopicRef>,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        parents: &[&str],
    ) -> &mut Self {
        self.add_sink_inner(name, topic.into(), key_serde, value_serde, None, parents)
    }

    /// Adds a sink node whose partition is chosen by `partitioner` from the key bytes and the
    /// topic's partition count.
    pub fn add_sink_with_partitioner<K: Data, V: Data>(
        &mut self,
        name: &str,
        topic: impl Into<TopicRef>,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        partitioner: PartitionerFn,
        parents: &[&str],
    ) -> &mut Self {
        self.add_sink_inner(
            name,
            topic.into(),
            key_serde,
            value_serde,
            Some(partitioner),
            parents,
        )
    }

    /// Adds a sink `name` writing to `topic` as a side output of processor `parent`: it gets
    /// only the records `parent` forwards to it by name, which may have other types than
    /// `parent`'s output.
    pub(crate) fn add_side_sink<K: Data, V: Data>(
        &mut self,
        name: &str,
        topic: impl Into<TopicRef>,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        parent: &str,
    ) -> &mut Self {
        self.add_sink_inner(name, topic.into(), key_serde, value_serde, None, &[parent]);
        if let Some(node) = self.nodes.iter_mut().rev().find(|n| n.name == name) {
            node.side_output = true;
        }
        self
    }

    fn add_sink_inner<K: Data, V: Data>(
        &mut self,
        name: &str,
        topic: TopicRef,
        key_serde: impl Serde<K>,
        value_serde: impl Serde<V>,
        partitioner: Option<PartitionerFn>,
        parents: &[&str],
    ) -> &mut Self {
        self.note_internal(&topic);
        let encode = Arc::new(move |record: &ErasedRecord| {
            let key = record.key.as_any().downcast_ref::<K>();
            let value = record.value.as_any().downcast_ref::<V>();
            match (key, value) {
                (Some(k), Some(v)) => Ok((key_serde.serialize(k)?, value_serde.serialize(v)?)),
                _ => Err(crate::serde::SerdeError::new(
                    "record types differ from the sink's serdes",
                )),
            }
        });
        self.push(NodeDef {
            name: name.to_owned(),
            kind: NodeKind::Sink {
                topic,
                encode,
                partitioner,
            },
            parents: parents.iter().map(|p| (*p).to_owned()).collect(),
            input: Some((TypeInfo::of::<K>(), TypeInfo::of::<V>())),
            output: None,
            stores: Vec::new(),
            side_output: false,
        })
    }

    /// Registers a state store that processors can be connected to.
    pub fn add_store(&mut self, store: StoreBuilder) -> &mut Self {
        if self.stores.contains_key(&store.name) {
            self.problems
                .push(format!("store `{}` is defined twice", store.name));
        } else {
            self.stores.insert(store.name.clone(), store);
        }
        self
    }

    /// Registers a global store: every instance reads its topic whole, and processors that
    /// hold the store (an `Arc` of it) read it from any task.
    pub fn add_global_store(
        &mut self,
        store: std::sync::Arc<crate::state::GlobalStore>,
    ) -> &mut Self {
        let clash = self.stores.contains_key(store.name())
            || self.globals.iter().any(|g| g.name() == store.name());
        if clash {
            self.problems
                .push(format!("store `{}` is defined twice", store.name()));
        } else {
            self.globals.push(store);
        }
        self
    }

    /// Sets the partition count of repartition topic `name` (default: the partition count of
    /// the input of the sub-topology that writes it).
    pub fn repartition_partitions(&mut self, name: &str, partitions: i32) -> &mut Self {
        self.repartition_partitions
            .insert(name.to_owned(), Some(partitions));
        self
    }

    /// Gives repartition topic `name` the partition count of the sub-topology that uses store
    /// `store` (a topic read together with that sub-topology's inputs must match them).
    pub(crate) fn repartition_like_store(&mut self, name: &str, store: &str) -> &mut Self {
        self.repartition_like
            .insert(name.to_owned(), store.to_owned());
        self
    }

    /// Marks `topic` as read as a table: a task reading it with other topics loads it to its
    /// end before processing the others.
    pub(crate) fn mark_table_topic(&mut self, topic: impl Into<TopicRef>) {
        self.table_topics.insert(topic.into());
    }

    /// The store registered as `name`.
    pub(crate) fn store(&self, name: &str) -> Option<&StoreBuilder> {
        self.stores.get(name)
    }

    /// Records a problem the build will report (a DSL operation that cannot be built).
    pub(crate) fn note_problem(&mut self, problem: String) {
        self.problems.push(problem);
    }

    /// Renames node `from` to `to`, in its children's parent lists too. A name already taken
    /// (or an unknown node) is a problem the build reports.
    pub fn rename_node(&mut self, from: &str, to: &str) -> &mut Self {
        if from == to {
            return self;
        }
        if self.has_node(to) {
            self.problems.push(format!(
                "node name `{to}` is used twice (renaming `{from}`)"
            ));
            return self;
        }
        let Some(node) = self.nodes.iter_mut().find(|n| n.name == from) else {
            self.problems
                .push(format!("cannot rename `{from}` to `{to}`: no such node"));
            return self;
        };
        node.name = to.to_owned();
        for node in &mut self.nodes {
            for parent in &mut node.parents {
                if parent == from {
                    *parent = to.to_owned();
                }
            }
        }
        self
    }

    /// True when a node of that name exists already.
    pub fn has_node(&self, name: &str) -> bool {
        self.nodes.iter().any(|n| n.name == name)
    }

    fn note_internal(&mut self, topic: &TopicRef) {
        if let TopicRef::Internal(name) = topic {
            self.repartition_partitions
                .entry(name.clone())
                .or_insert(None);
        }
    }

    fn push(&mut self, node: NodeDef) -> &mut Self {
        if self.has_node(&node.name) {
            self.problems
                .push(format!("node name `{}` is used twice", node.name));
        } else {
            self.nodes.push(node);
        }
        self
    }

    /// Validates the graph and splits it into sub-topologies.
    ///
    /// # Errors
    /// Lists every problem: duplicate or unknown names, missing parents, type mismatches on
    /// edges, unknown or shared stores, topics read twice, no source.
    pub fn build(self) -> Result<Topology, TopologyError> {
        let mut problems = self.problems;
        let index: BTreeMap<&str, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.as_str(), i))
            .collect();
        if !self
            .nodes
            .iter()
            .any(|n| matches!(n.kind, NodeKind::Source { .. }))
        {
            problems.push("the topology has no source".to_owned());
        }
        let mut read_topics = BTreeSet::new();
        for node in &self.nodes {
            match &node.kind {
                NodeKind::Source { topic, .. } if !read_topics.insert(topic.clone()) => {
                    problems.push(format!("topic {topic:?} is read by more than one source"));
                }
                NodeKind::Source { .. } => {}
                _ if node.parents.is_empty() => {
                    problems.push(format!("node `{}` has no parent", node.name));
                }
                _ => {}
            }
            for parent in &node.parents {
                let Some(&p) = index.get(parent.as_str()) else {
                    problems.push(format!(
                        "node `{}` names unknown parent `{parent}`",
                        node.name
                    ));
                    continue;
                };
                let parent_node = &self.nodes[p];
                match (parent_node.output, node.input) {
                    (Some(_), _) if node.side_output => {}
                    (None, _) => problems.push(format!(
                        "node `{}` has sink `{parent}` as parent; sinks have no children",
                        node.name
                    )),
                    (Some(out), Some(input)) if out != input => problems.push(format!(
                        "edge `{parent}` -> `{}`: `{parent}` forwards ({}, {}) but `{}` accepts ({}, {})",
                        node.name,
                        out.0.name(),
                        out.1.name(),
                        node.name,
                        input.0.name(),
                        input.1.name()
                    )),
                    _ => {}
                }
            }
            for store in &node.stores {
                if !self.stores.contains_key(store) {
                    problems.push(format!(
                        "processor `{}` uses unknown store `{store}`",
                        node.name
                    ));
                }
            }
        }
        for (name, partitions) in &self.repartition_partitions {
            if let Some(p) = partitions {
                if *p < 1 {
                    problems.push(format!(
                        "repartition topic `{name}` needs at least 1 partition, got {p}"
                    ));
                }
            }
        }
        let sub_topologies = super::sub_topologies::split(&self.nodes, &index);
        let mut store_owner: BTreeMap<&str, u32> = BTreeMap::new();
        for sub in &sub_topologies {
            for store in &sub.stores {
                if let Some(other) = store_owner.insert(store, sub.id) {
                    if other != sub.id {
                        problems.push(format!(
                            "store `{store}` is used by sub-topologies {other} and {}; a store belongs to one",
                            sub.id
                        ));
                    }
                }
            }
        }
        for sub in &sub_topologies {
            if sub.source_topics.is_empty() {
                problems.push(format!(
                    "nodes {:?} are not connected to any source",
                    sub.nodes
                        .iter()
                        .map(|&i| &self.nodes[i].name)
                        .collect::<Vec<_>>()
                ));
            }
        }
        problems.extend(super::sub_topologies::cycles(&self.nodes, &sub_topologies));
        if !problems.is_empty() {
            return Err(TopologyError { problems });
        }
        Ok(Topology {
            nodes: self.nodes,
            stores: self.stores,
            sub_topologies,
            repartition_partitions: self.repartition_partitions,
            repartition_like: self.repartition_like,
            table_topics: self.table_topics,
            globals: self.globals,
        })
    }
}
