//! A task's instantiated processor graph: decodes input, runs processors depth-first,
//! encodes sink output, fires punctuations.

use std::collections::HashMap;

use super::context::{ContextInner, OperatorCounts};
use super::TaskError;
use crate::processor::PunctuationType;
use crate::record::{RawRecord, RecordMetadata};
use crate::state::TaskStores;
use crate::topology::erased::{ErasedProcessor, ErasedRecord};
use crate::topology::{DecodeError, NodeKind, SubTopology, Topology};

enum RuntimeNode {
    Source {
        decode: crate::topology::node::Decoder,
    },
    Processor(Box<dyn ErasedProcessor>),
    Sink {
        topic: String,
        encode: crate::topology::node::Encoder,
        partitioner: Option<crate::topology::node::PartitionerFn>,
    },
}

struct Schedule {
    node: usize,
    interval_ms: i64,
    kind: PunctuationType,
    next: i64,
}

/// One task's nodes, children lists and context.
pub(crate) struct TaskGraph {
    nodes: Vec<RuntimeNode>,
    children: Vec<Vec<usize>>,
    /// Side outputs get only records forwarded to them by name.
    side_outputs: Vec<bool>,
    sources: HashMap<String, usize>,
    ctx: ContextInner,
    schedules: Vec<Schedule>,
    sink_partitions: HashMap<String, i32>,
}

/// The nodes of a graph given by its children lists, each after all of its parents (Kahn's
/// algorithm; a node on a cycle, which the builder refuses, comes last).
fn topological_order(children: &[Vec<usize>]) -> Vec<usize> {
    let mut parents = vec![0_usize; children.len()];
    for targets in children {
        for &c in targets {
            parents[c] += 1;
        }
    }
    let mut ready: std::collections::VecDeque<usize> =
        (0..children.len()).filter(|&n| parents[n] == 0).collect();
    let mut order = Vec::with_capacity(children.len());
    while let Some(node) = ready.pop_front() {
        order.push(node);
        for &c in &children[node] {
            parents[c] -= 1;
            if parents[c] == 0 {
                ready.push_back(c);
            }
        }
    }
    let rest: Vec<usize> = (0..children.len()).filter(|n| !order.contains(n)).collect();
    order.extend(rest);
    order
}

impl TaskGraph {
    /// Instantiates sub-topology `sub` for `partition`: fresh processors, the given stores.
    /// `sink_partitions` gives the partition count of sink topics that use a custom
    /// partitioner.
    pub(crate) fn new(
        topology: &Topology,
        sub: &SubTopology,
        application_id: &str,
        partition: i32,
        stores: TaskStores,
        sink_partitions: HashMap<String, i32>,
    ) -> Self {
        let local: HashMap<&str, usize> = sub
            .nodes
            .iter()
            .enumerate()
            .map(|(local, &global)| (topology.nodes[global].name.as_str(), local))
            .collect();
        let mut nodes = Vec::with_capacity(sub.nodes.len());
        let mut children = vec![Vec::new(); sub.nodes.len()];
        let mut sources = HashMap::new();
        let mut node_names = Vec::new();
        let mut node_stores = Vec::new();
        let mut side_outputs = Vec::new();
        for (i, &global) in sub.nodes.iter().enumerate() {
            let def = &topology.nodes[global];
            node_names.push(def.name.clone());
            node_stores.push(def.stores.clone());
            for parent in &def.parents {
                if let Some(&p) = local.get(parent.as_str()) {
                    children[p].push(i);
                }
            }
            side_outputs.push(def.side_output);
            nodes.push(match &def.kind {
                NodeKind::Source { topic, decode } => {
                    sources.insert(topic.resolve(application_id), i);
                    RuntimeNode::Source {
                        decode: decode.clone(),
                    }
                }
                NodeKind::Processor { supplier } => RuntimeNode::Processor(supplier()),
                NodeKind::Sink {
                    topic,
                    encode,
                    partitioner,
                } => RuntimeNode::Sink {
                    topic: topic.resolve(application_id),
                    encode: encode.clone(),
                    partitioner: partitioner.clone(),
                },
            });
        }
        TaskGraph {
            nodes,
            children,
            side_outputs,
            sources,
            ctx: ContextInner {
                stores,
                forwarded: Vec::new(),
                metadata: None,
                stream_time: i64::MIN,
                wall_clock: 0,
                partition,
                current_node: 0,
                node_names,
                node_stores,
                new_schedules: Vec::new(),
                counts: Vec::new(),
            },
            schedules: Vec::new(),
            sink_partitions,
        }
    }

    /// The task's stores.
    pub(crate) fn stores(&self) -> &TaskStores {
        &self.ctx.stores
    }

    /// The task's stores, mutably.
    pub(crate) fn stores_mut(&mut self) -> &mut TaskStores {
        &mut self.ctx.stores
    }

    /// Initialises every processor and registers the punctuations they schedule.
    pub(crate) fn init(&mut self, wall_clock: i64) -> Result<(), TaskError> {
        self.ctx.wall_clock = wall_clock;
        for i in 0..self.nodes.len() {
            if let RuntimeNode::Processor(p) = &mut self.nodes[i] {
                self.ctx.current_node = i;
                p.init(&mut self.ctx).map_err(|source| TaskError::Process {
                    node: self.ctx.node_names[i].clone(),
                    source,
                })?;
                for (interval, kind) in std::mem::take(&mut self.ctx.new_schedules) {
                    let interval_ms = i64::try_from(interval.as_millis())
                        .unwrap_or(i64::MAX)
                        .max(1);
                    let base = match kind {
                        PunctuationType::WallClockTime => wall_clock,
                        PunctuationType::StreamTime => 0,
                    };
                    self.schedules.push(Schedule {
                        node: i,
                        interval_ms,
                        kind,
                        next: base.saturating_add(interval_ms),
                    });
                }
            }
        }
        // Records forwarded from init go nowhere: there is no input to attach them to.
        self.ctx.forwarded.clear();
        Ok(())
    }

    /// What operators counted since the last call, by operator name.
    pub(crate) fn take_operator_counts(&mut self) -> Vec<(String, OperatorCounts)> {
        let counts = std::mem::take(&mut self.ctx.counts);
        counts
            .into_iter()
            .enumerate()
            .filter(|(_, n)| *n != OperatorCounts::default())
            .map(|(node, n)| (self.ctx.node_names[node].clone(), n))
            .collect()
    }

    /// The largest event time of the records processed (`i64::MIN` before the first).
    pub(crate) fn stream_time(&self) -> i64 {
        self.ctx.stream_time
    }

    /// Resumes stream time at `stream_time`, as committed with the task's input offset (it
    /// never moves back).
    pub(crate) fn resume_stream_time(&mut self, stream_time: i64) {
        self.ctx.stream_time = self.ctx.stream_time.max(stream_time);
    }

    /// The event time of an input record as its source makes it (timestamp extractor
    /// included); `None` when the source cannot decode it.
    pub(crate) fn event_time(&self, input: &RawRecord) -> Option<i64> {
        let source = *self.sources.get(&input.topic)?;
        let RuntimeNode::Source { decode } = &self.nodes[source] else {
            return None;
        };
        decode(
            input.key.as_deref(),
            input.value.as_deref(),
            input.timestamp,
        )
        .ok()
        .map(|r| r.timestamp)
    }

    /// Processes one input record, appending sink output to `out`.
    pub(crate) fn process(
        &mut self,
        input: &RawRecord,
        wall_clock: i64,
        out: &mut Vec<RawRecord>,
    ) -> Result<(), TaskError> {
        let &source = self
            .sources
            .get(&input.topic)
            .ok_or_else(|| TaskError::UnknownTopic(input.topic.clone()))?;
        let RuntimeNode::Source { decode } = &self.nodes[source] else {
            return Err(TaskError::UnknownTopic(input.topic.clone()));
        };
        let partition = input.partition.unwrap_or(self.ctx.partition);
        let mut record = decode(
            input.key.as_deref(),
            input.value.as_deref(),
            input.timestamp,
        )
        .map_err(|e| match e {
            DecodeError::Serde { part, source } => TaskError::Deserialization {
                topic: input.topic.clone(),
                partition,
                offset: input.offset,
                part,
                source,
            },
            DecodeError::Timestamp(timestamp) => TaskError::InvalidTimestamp {
                topic: input.topic.clone(),
                partition,
                offset: input.offset,
                timestamp,
            },
        })?;
        record.headers.clone_from(&input.headers);
        self.ctx.metadata = Some(RecordMetadata {
            topic: input.topic.clone(),
            partition,
            offset: input.offset,
        });
        self.ctx.wall_clock = wall_clock;
        self.ctx.stream_time = self.ctx.stream_time.max(record.timestamp);
        let result = self.guarded(|graph| {
            let routed = graph.route(source, vec![(None, record)], out);
            graph.ctx.metadata = None;
            routed?;
            graph.punctuate(PunctuationType::StreamTime, graph.ctx.stream_time, out)
        });
        self.ctx.metadata = None;
        result
    }

    /// Runs `f`, turning a panic of the user code inside it into [`TaskError::Panicked`]
    /// naming the processor that ran. The task's state is then suspect: the runtime aborts
    /// the transaction and drops the task without applying anything.
    fn guarded(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<(), TaskError>,
    ) -> Result<(), TaskError> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(self))) {
            Ok(result) => result,
            Err(payload) => Err(TaskError::Panicked {
                node: self
                    .ctx
                    .node_names
                    .get(self.ctx.current_node)
                    .cloned()
                    .unwrap_or_default(),
                message: super::panic_message(payload.as_ref()),
            }),
        }
    }

    /// Fires wall-clock punctuations that are due at `now`.
    pub(crate) fn punctuate_wall_clock(
        &mut self,
        now: i64,
        out: &mut Vec<RawRecord>,
    ) -> Result<(), TaskError> {
        self.ctx.wall_clock = now;
        self.guarded(|graph| graph.punctuate(PunctuationType::WallClockTime, now, out))
    }

    fn punctuate(
        &mut self,
        kind: PunctuationType,
        now: i64,
        out: &mut Vec<RawRecord>,
    ) -> Result<(), TaskError> {
        for s in 0..self.schedules.len() {
            let due = {
                let sched = &mut self.schedules[s];
                if sched.kind != kind || now < sched.next {
                    None
                } else {
                    // Fire once and skip missed intervals, as Kafka Streams does.
                    let missed = (now - sched.next) / sched.interval_ms;
                    sched.next += (missed + 1) * sched.interval_ms;
                    Some(sched.node)
                }
            };
            let Some(node) = due else { continue };
            if let RuntimeNode::Processor(p) = &mut self.nodes[node] {
                self.ctx.current_node = node;
                p.punctuate(&mut self.ctx, kind, now)
                    .map_err(|source| TaskError::Process {
                        node: self.ctx.node_names[node].clone(),
                        source,
                    })?;
            }
            let forwarded = std::mem::take(&mut self.ctx.forwarded);
            self.route(node, forwarded, out)?;
        }
        Ok(())
    }

    /// Depth-first delivery: every record reaches the end of its path before the next
    /// forwarded record starts, so per-path order equals forward order.
    fn route(
        &mut self,
        from: usize,
        forwarded: Vec<(Option<String>, ErasedRecord)>,
        out: &mut Vec<RawRecord>,
    ) -> Result<(), TaskError> {
        let mut stack: Vec<(usize, ErasedRecord)> = Vec::new();
        self.push_children(from, forwarded, &mut stack)?;
        while let Some((node, record)) = stack.pop() {
            match &mut self.nodes[node] {
                RuntimeNode::Source { .. } => {
                    let children = vec![(None, record)];
                    self.push_children(node, children, &mut stack)?;
                }
                RuntimeNode::Processor(p) => {
                    self.ctx.current_node = node;
                    p.process(&mut self.ctx, record)
                        .map_err(|source| TaskError::Process {
                            node: self.ctx.node_names[node].clone(),
                            source,
                        })?;
                    let forwarded = std::mem::take(&mut self.ctx.forwarded);
                    self.push_children(node, forwarded, &mut stack)?;
                }
                RuntimeNode::Sink {
                    topic,
                    encode,
                    partitioner,
                } => {
                    let (key, value) =
                        encode(&record).map_err(|source| TaskError::Serialization {
                            node: self.ctx.node_names[node].clone(),
                            topic: topic.clone(),
                            source,
                        })?;
                    let partition = match partitioner {
                        Some(f) => {
                            let count = self
                                .sink_partitions
                                .get(topic.as_str())
                                .copied()
                                .unwrap_or(1);
                            Some(f(key.as_deref(), count))
                        }
                        None => None,
                    };
                    out.push(RawRecord {
                        topic: topic.clone(),
                        partition,
                        offset: -1,
                        key,
                        value,
                        timestamp: record.timestamp,
                        headers: record.headers,
                    });
                }
            }
        }
        Ok(())
    }

    fn push_children(
        &self,
        node: usize,
        forwarded: Vec<(Option<String>, ErasedRecord)>,
        stack: &mut Vec<(usize, ErasedRecord)>,
    ) -> Result<(), TaskError> {
        // Collect in delivery order, then push reversed so the first pops first.
        let mut batch: Vec<(usize, ErasedRecord)> = Vec::new();
        for (child_name, record) in forwarded {
            let children = &self.children[node];
            let targets: &[usize] = match &child_name {
                Some(name) => {
                    let found = children.iter().find(|&&c| self.ctx.node_names[c] == *name);
                    match found {
                        Some(c) => std::slice::from_ref(c),
                        None => {
                            return Err(TaskError::Process {
                                node: self.ctx.node_names[node].clone(),
                                source: crate::processor::ProcessError::UnknownChild {
                                    processor: self.ctx.node_names[node].clone(),
                                    child: name.clone(),
                                },
                            })
                        }
                    }
                }
                None => children,
            };
            let broadcast: Vec<usize>;
            let targets = if child_name.is_none() && targets.iter().any(|&c| self.side_outputs[c]) {
                broadcast = targets
                    .iter()
                    .copied()
                    .filter(|&c| !self.side_outputs[c])
                    .collect();
                broadcast.as_slice()
            } else {
                targets
            };
            let last = targets.len().saturating_sub(1);
            let mut record = Some(record);
            for (i, &target) in targets.iter().enumerate() {
                let r = if i == last {
                    record.take()
                } else {
                    record.clone()
                };
                if let Some(r) = r {
                    batch.push((target, r));
                }
            }
        }
        stack.extend(batch.into_iter().rev());
        Ok(())
    }

    /// Tells every processor, in topology order, that the input has ended (a bounded run),
    /// appending what they forward to `out`.
    pub(crate) fn end_of_input(
        &mut self,
        wall_clock: i64,
        out: &mut Vec<RawRecord>,
    ) -> Result<(), TaskError> {
        self.ctx.wall_clock = wall_clock;
        let order = topological_order(&self.children);
        self.guarded(|graph| {
            for node in order {
                let RuntimeNode::Processor(p) = &mut graph.nodes[node] else {
                    continue;
                };
                graph.ctx.current_node = node;
                p.end_of_input(&mut graph.ctx)
                    .map_err(|source| TaskError::Process {
                        node: graph.ctx.node_names[node].clone(),
                        source,
                    })?;
                let forwarded = std::mem::take(&mut graph.ctx.forwarded);
                graph.route(node, forwarded, out)?;
            }
            Ok(())
        })
    }

    /// The two-phase sinks of the task's processors, in topology order.
    pub(crate) fn two_phase_sinks(
        &mut self,
    ) -> impl Iterator<Item = &mut dyn crate::two_phase::TwoPhaseSink> + '_ {
        self.nodes.iter_mut().filter_map(|node| match node {
            RuntimeNode::Processor(p) => p.two_phase_sink(),
            _ => None,
        })
    }

    /// Closes every processor.
    pub(crate) fn close(&mut self) {
        for node in &mut self.nodes {
            if let RuntimeNode::Processor(p) = node {
                p.close();
            }
        }
    }
}
