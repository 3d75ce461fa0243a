//! Topologies: named sources, processors, sinks and stores, split into sub-topologies.

mod builder;
pub(crate) mod erased;
pub(crate) mod node;
mod sub_topologies;

use std::collections::BTreeMap;

pub use builder::{TopologyBuilder, TopologyError};
pub use erased::TypeInfo;
pub(crate) use node::{DecodeError, NodeDef, NodeKind};
pub use node::{PartitionerFn, TimestampExtractor};

use crate::state::StoreBuilder;

/// A topic a topology reads or writes: the app's own (internal) or anybody's (external).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TopicRef {
    /// A topic named by the user.
    External(String),
    /// A repartition topic owned by the app; its Kafka name is `<application.id>-<name>`.
    Internal(String),
}

impl TopicRef {
    /// The topic's name in Kafka for the given application id.
    pub fn resolve(&self, application_id: &str) -> String {
        match self {
            TopicRef::External(name) => name.clone(),
            TopicRef::Internal(name) => format!("{application_id}-{name}"),
        }
    }
}

/// The changelog topic of store `store` of app `application_id`.
pub fn changelog_topic(application_id: &str, store: &str) -> String {
    format!("{application_id}-{store}-changelog")
}

/// A connected part of a topology: the unit that tasks instantiate per input partition.
/// Sub-topologies meet only through repartition topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubTopology {
    /// Position in the topology; stable while the topology's shape is.
    pub id: u32,
    /// Indices of its nodes in the topology, in insertion order.
    pub(crate) nodes: Vec<usize>,
    /// Topics its sources read.
    pub source_topics: Vec<TopicRef>,
    /// Stores its processors use.
    pub stores: Vec<String>,
}

/// A validated topology, ready to run or to test with the test driver.
pub struct Topology {
    pub(crate) nodes: Vec<NodeDef>,
    pub(crate) stores: BTreeMap<String, StoreBuilder>,
    pub(crate) sub_topologies: Vec<SubTopology>,
    /// Partition count chosen for each repartition topic (`None`: same as its writers' input).
    pub(crate) repartition_partitions: BTreeMap<String, Option<i32>>,
    /// Repartition topics whose partition count is that of the sub-topology using a store.
    pub(crate) repartition_like: BTreeMap<String, String>,
    /// Topics read as tables: a task loads them to their end before its other inputs.
    pub(crate) table_topics: std::collections::BTreeSet<TopicRef>,
    /// Tables every instance holds whole.
    pub(crate) globals: Vec<std::sync::Arc<crate::state::GlobalStore>>,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Topology {
    /// The sub-topologies, in id order.
    pub fn sub_topologies(&self) -> &[SubTopology] {
        &self.sub_topologies
    }

    /// The store definitions by name.
    pub fn stores(&self) -> impl Iterator<Item = &StoreBuilder> {
        self.stores.values()
    }

    /// Every topic any source reads.
    pub fn source_topics(&self) -> Vec<TopicRef> {
        self.sub_topologies
            .iter()
            .flat_map(|s| s.source_topics.iter().cloned())
            .collect()
    }

    /// Every topic any sink writes.
    pub fn sink_topics(&self) -> Vec<TopicRef> {
        self.nodes
            .iter()
            .filter_map(|n| match &n.kind {
                NodeKind::Sink { topic, .. } => Some(topic.clone()),
                _ => None,
            })
            .collect()
    }

    /// The repartition topics (logical names) with their configured partition counts.
    pub fn repartition_topics(&self) -> &BTreeMap<String, Option<i32>> {
        &self.repartition_partitions
    }

    /// Repartition topic (logical name) → the sub-topologies that write it.
    pub(crate) fn internal_writers(&self) -> BTreeMap<String, Vec<u32>> {
        sub_topologies::internal_writers(&self.nodes, &self.sub_topologies)
    }

    /// The sub-topology that reads `topic` (resolved for `application_id`).
    pub fn sub_topology_of(&self, application_id: &str, topic: &str) -> Option<&SubTopology> {
        self.sub_topologies.iter().find(|s| {
            s.source_topics
                .iter()
                .any(|t| t.resolve(application_id) == topic)
        })
    }

    /// A readable description: sub-topologies with their nodes, topics and stores.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for sub in &self.sub_topologies {
            out.push_str(&format!("Sub-topology {}\n", sub.id));
            for &i in &sub.nodes {
                let node = &self.nodes[i];
                let what = match &node.kind {
                    NodeKind::Source { topic, .. } => format!("source <- {topic:?}"),
                    NodeKind::Processor { .. } => format!("processor stores={:?}", node.stores),
                    NodeKind::Sink { topic, .. } => format!("sink -> {topic:?}"),
                };
                out.push_str(&format!(
                    "  {} ({what}) parents={:?}\n",
                    node.name, node.parents
                ));
            }
        }
        for global in &self.globals {
            out.push_str(&format!(
                "Global table {} <- {:?}\n",
                global.name(),
                global.topic()
            ));
        }
        out
    }

    /// A fingerprint of the topology's shape: node names, kinds, edges, topics and stores with
    /// their formats. Savepoints record it to detect incompatible upgrades.
    pub fn fingerprint(&self) -> String {
        let mut shape = String::new();
        for node in &self.nodes {
            shape.push_str(&format!("{}|{:?}|", node.name, node.parents));
            match &node.kind {
                NodeKind::Source { topic, .. } => shape.push_str(&format!("src:{topic:?};")),
                NodeKind::Processor { .. } => shape.push_str(&format!("proc:{:?};", node.stores)),
                NodeKind::Sink { topic, .. } => shape.push_str(&format!("sink:{topic:?};")),
            }
        }
        for store in self.stores.values() {
            shape.push_str(&format!(
                "store:{}:{:?}:{}:{};",
                store.name, store.kind, store.key_format, store.value_format
            ));
        }
        format!("{:016x}", fnv1a(shape.as_bytes()))
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
