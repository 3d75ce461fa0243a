//! Sub-topologies: the connected parts of a topology's graph, which repartition topics
//! each sub-topology writes, and the check that none reads its own output.

use std::collections::{BTreeMap, BTreeSet};

use super::node::{NodeDef, NodeKind};
use super::{SubTopology, TopicRef};

/// Repartition topic (logical name) → the sub-topologies that write it.
pub(crate) fn internal_writers(
    nodes: &[NodeDef],
    subs: &[SubTopology],
) -> BTreeMap<String, Vec<u32>> {
    let mut writers: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for sub in subs {
        for &i in &sub.nodes {
            if let NodeKind::Sink {
                topic: TopicRef::Internal(name),
                ..
            } = &nodes[i].kind
            {
                writers.entry(name.clone()).or_default().push(sub.id);
            }
        }
    }
    writers
}

/// A problem for each sub-topology that reads, through repartition topics, what it writes
/// itself: its tasks would wait on their own output (a bounded run or a savepoint drain
/// could never see it settle).
pub(super) fn cycles(nodes: &[NodeDef], subs: &[SubTopology]) -> Vec<String> {
    // Sub-topology → the sub-topologies reading a topic it writes.
    let mut readers: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for (name, writers) in internal_writers(nodes, subs) {
        let topic = TopicRef::Internal(name);
        for reader in subs.iter().filter(|s| s.source_topics.contains(&topic)) {
            for &writer in &writers {
                readers.entry(writer).or_default().insert(reader.id);
            }
        }
    }
    let mut problems = Vec::new();
    for sub in subs {
        let mut seen = BTreeSet::new();
        let mut next: Vec<u32> = readers
            .get(&sub.id)
            .into_iter()
            .flatten()
            .copied()
            .collect();
        while let Some(s) = next.pop() {
            if s == sub.id {
                problems.push(format!(
                    "sub-topology {} reads its own output through repartition topics (topics {:?}); an operator's two sides must come from different sub-topologies",
                    sub.id, sub.source_topics
                ));
                break;
            }
            if seen.insert(s) {
                next.extend(readers.get(&s).into_iter().flatten().copied());
            }
        }
    }
    problems
}

/// Connected components over parent edges and shared stores (a processor that reads a
/// table's store runs in the task that maintains it: a stream-table join), numbered in order
/// of their first node.
pub(super) fn split(nodes: &[NodeDef], index: &BTreeMap<&str, usize>) -> Vec<SubTopology> {
    let mut component: Vec<usize> = (0..nodes.len()).collect();
    fn find(c: &mut [usize], i: usize) -> usize {
        let mut root = i;
        while c[root] != root {
            root = c[root];
        }
        c[i] = root;
        root
    }
    fn union(c: &mut [usize], i: usize, j: usize) {
        let (a, b) = (find(c, i), find(c, j));
        c[a.max(b)] = a.min(b);
    }
    let mut store_user: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, node) in nodes.iter().enumerate() {
        for parent in &node.parents {
            if let Some(&p) = index.get(parent.as_str()) {
                union(&mut component, i, p);
            }
        }
        for store in &node.stores {
            match store_user.get(store.as_str()) {
                Some(&other) => union(&mut component, i, other),
                None => {
                    store_user.insert(store, i);
                }
            }
        }
    }
    let mut by_root: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..nodes.len() {
        let root = find(&mut component, i);
        by_root.entry(root).or_default().push(i);
    }
    by_root
        .into_values()
        .enumerate()
        .map(|(id, members)| {
            let mut source_topics = Vec::new();
            let mut stores = BTreeSet::new();
            for &i in &members {
                if let NodeKind::Source { topic, .. } = &nodes[i].kind {
                    source_topics.push(topic.clone());
                }
                stores.extend(nodes[i].stores.iter().cloned());
            }
            SubTopology {
                id: u32::try_from(id).unwrap_or(u32::MAX),
                nodes: members,
                source_topics,
                stores: stores.into_iter().collect(),
            }
        })
        .collect()
}
