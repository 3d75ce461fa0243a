//! A deterministic in-memory driver for topologies: no broker, no threads, no clock.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use crate::record::{RawRecord, Record};
use crate::serde::{Serde, SerdeError};
use crate::state::{StateError, StoreKind, TaskStores};
use crate::task::{OperatorCounts, TaskError, TaskGraph};
use crate::topology::{changelog_topic, Topology};

/// Application id the driver resolves internal topic names with.
pub const TEST_APPLICATION_ID: &str = "test-app";

/// Runs a [`Topology`] in memory, one task per sub-topology, committing after every input
/// record (two-phase sinks prepare and commit then, as they would in a Kafka commit). Output to the app's repartition topics is fed back in immediately; output to other
/// topics is kept for [`read_output`](Self::read_output).
///
/// ```
/// use eddy::serde::StringSerde;
/// use eddy::dsl::StreamsBuilder;
/// use eddy::test_driver::TopologyTestDriver;
///
/// let builder = StreamsBuilder::new();
/// builder
///     .stream("in", StringSerde, StringSerde)
///     .map_values(|v: String| v.to_uppercase())
///     .to("out", StringSerde, StringSerde);
/// let mut driver = TopologyTestDriver::new(builder.build()?)?;
/// driver.pipe_input("in", &StringSerde, &StringSerde, &"k".to_owned(), &"hello".to_owned(), 1)?;
/// let out = driver.read_output("out", &StringSerde, &StringSerde)?;
/// assert_eq!(out[0].value, "HELLO");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct TopologyTestDriver {
    tasks: BTreeMap<u32, TaskGraph>,
    topic_to_task: HashMap<String, u32>,
    /// Global tables by topic: records piped to them update the table every task reads.
    globals: HashMap<String, std::sync::Arc<crate::state::GlobalStore>>,
    outputs: BTreeMap<String, VecDeque<RawRecord>>,
    offsets: HashMap<String, i64>,
    wall_clock: i64,
    counts: BTreeMap<String, OperatorCounts>,
    /// Commits made (the sequence two-phase sinks see).
    commits: u64,
}

impl std::fmt::Debug for TopologyTestDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopologyTestDriver")
            .field("tasks", &self.tasks.keys().collect::<Vec<_>>())
            .field("wall_clock", &self.wall_clock)
            .finish()
    }
}

impl TopologyTestDriver {
    /// Instantiates every sub-topology (stores in memory) and initialises its processors.
    ///
    /// # Errors
    /// Fails when a processor's `init` fails.
    pub fn new(topology: Topology) -> Result<Self, TaskError> {
        let mut tasks = BTreeMap::new();
        let mut topic_to_task = HashMap::new();
        for sub in topology.sub_topologies() {
            let defs: Vec<_> = sub
                .stores
                .iter()
                .filter_map(|name| topology.stores.get(name))
                .map(|def| {
                    let mut def = def.clone();
                    def.kind = StoreKind::InMemory;
                    def
                })
                .collect();
            // Without a directory every store is in memory; RocksDB memory goes unused.
            let stores = TaskStores::open(
                None,
                &defs,
                |store| changelog_topic(TEST_APPLICATION_ID, store),
                &crate::state::RocksMemory::default(),
            )?;
            let mut graph = TaskGraph::new(
                &topology,
                sub,
                TEST_APPLICATION_ID,
                0,
                stores,
                HashMap::new(),
            );
            graph.init(0)?;
            for topic in &sub.source_topics {
                topic_to_task.insert(topic.resolve(TEST_APPLICATION_ID), sub.id);
            }
            tasks.insert(sub.id, graph);
        }
        let globals = topology
            .globals
            .iter()
            .map(|g| (g.topic().to_owned(), std::sync::Arc::clone(g)))
            .collect();
        Ok(TopologyTestDriver {
            tasks,
            topic_to_task,
            globals,
            outputs: BTreeMap::new(),
            offsets: HashMap::new(),
            wall_clock: 0,
            counts: BTreeMap::new(),
            commits: 0,
        })
    }

    /// Feeds one typed record to the source reading `topic`.
    ///
    /// # Errors
    /// Fails when encoding fails or the topology fails on the record.
    pub fn pipe_input<K: 'static, V: 'static>(
        &mut self,
        topic: &str,
        key_serde: &dyn Serde<K>,
        value_serde: &dyn Serde<V>,
        key: &K,
        value: &V,
        timestamp: i64,
    ) -> Result<(), TaskError> {
        let encode_err = |source: SerdeError| TaskError::Serialization {
            node: "test input".to_owned(),
            topic: topic.to_owned(),
            source,
        };
        let key = key_serde.serialize(key).map_err(encode_err)?;
        let value = value_serde.serialize(value).map_err(encode_err)?;
        self.pipe_raw(topic, key.as_deref(), value.as_deref(), timestamp)
    }

    /// Feeds one record in Kafka form (bytes) to the source reading `topic`.
    ///
    /// # Errors
    /// Fails when the topology fails on the record, including deserialization errors.
    pub fn pipe_raw(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
    ) -> Result<(), TaskError> {
        let queue = VecDeque::from([self.raw(topic, key, value, timestamp)]);
        self.run(queue)
    }

    /// Processes queued input records, and the repartition records they produce, until none
    /// is left.
    fn run(&mut self, mut queue: VecDeque<RawRecord>) -> Result<(), TaskError> {
        while let Some(input) = queue.pop_front() {
            if let Some(global) = self.globals.get(&input.topic) {
                if let Some(key) = &input.key {
                    global.apply(key, input.value.as_deref());
                }
                continue;
            }
            let task_id = *self
                .topic_to_task
                .get(&input.topic)
                .ok_or_else(|| TaskError::UnknownTopic(input.topic.clone()))?;
            let mut out = Vec::new();
            if let Some(task) = self.tasks.get_mut(&task_id) {
                let processed = task.process(&input, self.wall_clock, &mut out);
                Self::add_counts(&mut self.counts, task);
                processed?;
                self.commits += 1;
                Self::commit_task(task, task_id, self.commits)?;
            }
            self.route(out, &mut queue);
        }
        Ok(())
    }

    /// Commits a task's stores, and prepares then commits its two-phase sinks.
    fn commit_task(task: &mut TaskGraph, sub_topology: u32, commit: u64) -> Result<(), TaskError> {
        task.stores_mut().apply_committed(&BTreeMap::new())?;
        let id = crate::two_phase::CommitId {
            application: TEST_APPLICATION_ID.to_owned(),
            task: crate::task::TaskId {
                sub_topology,
                partition: 0,
            },
            sequence: commit,
            owner: "test-driver".to_owned(),
        };
        for sink in task.two_phase_sinks() {
            let failed = |e: crate::two_phase::SinkError| TaskError::Process {
                node: e.sink.clone(),
                source: crate::processor::ProcessError::User(e.message),
            };
            if sink.prepare(&id).map_err(failed)? {
                sink.commit(&id).map_err(failed)?;
            }
        }
        Ok(())
    }

    fn raw(&mut self, topic: &str, key: Option<&[u8]>, value: Option<&[u8]>, ts: i64) -> RawRecord {
        let offset = self.offsets.entry(topic.to_owned()).or_insert(0);
        let record = RawRecord {
            topic: topic.to_owned(),
            partition: Some(0),
            offset: *offset,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            timestamp: ts,
            headers: Vec::new(),
        };
        *offset += 1;
        record
    }

    fn route(&mut self, out: Vec<RawRecord>, queue: &mut VecDeque<RawRecord>) {
        for record in out {
            if self.topic_to_task.contains_key(&record.topic) {
                let fed = self.raw(
                    &record.topic,
                    record.key.as_deref(),
                    record.value.as_deref(),
                    record.timestamp,
                );
                queue.push_back(fed);
            } else {
                self.outputs
                    .entry(record.topic.clone())
                    .or_default()
                    .push_back(record);
            }
        }
    }

    /// Advances the wall clock and fires the wall-clock punctuations that come due.
    ///
    /// # Errors
    /// Fails when a punctuation fails.
    pub fn advance_wall_clock(&mut self, by: Duration) -> Result<(), TaskError> {
        self.wall_clock += i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.each_task(TaskGraph::punctuate_wall_clock)
    }

    /// Runs `step` on every task in sub-topology order at the current wall clock, commits
    /// its stores and processes what it forwards (downstream tasks included) before the
    /// next task's turn.
    fn each_task(
        &mut self,
        step: impl Fn(&mut TaskGraph, i64, &mut Vec<RawRecord>) -> Result<(), TaskError>,
    ) -> Result<(), TaskError> {
        let ids: Vec<u32> = self.tasks.keys().copied().collect();
        for id in ids {
            let mut out = Vec::new();
            if let Some(task) = self.tasks.get_mut(&id) {
                let stepped = step(task, self.wall_clock, &mut out);
                Self::add_counts(&mut self.counts, task);
                stepped?;
                self.commits += 1;
                Self::commit_task(task, id, self.commits)?;
            }
            let mut queue = VecDeque::new();
            self.route(out, &mut queue);
            self.run(queue)?;
        }
        Ok(())
    }

    /// Ends the input as a bounded run does (`processing.mode = bounded`): every task, in
    /// sub-topology order, tells its processors that no more records come, so windows close
    /// and unmatched join records are emitted; what they forward flows downstream first.
    ///
    /// # Errors
    /// Fails when a processor fails.
    pub fn end_input(&mut self) -> Result<(), TaskError> {
        self.each_task(TaskGraph::end_of_input)
    }

    /// Takes every record written to `topic` so far, decoded.
    ///
    /// # Errors
    /// Fails when a record does not decode with the given serdes.
    pub fn read_output<K: 'static, V: 'static>(
        &mut self,
        topic: &str,
        key_serde: &dyn Serde<K>,
        value_serde: &dyn Serde<V>,
    ) -> Result<Vec<Record<K, V>>, SerdeError> {
        self.outputs
            .remove(topic)
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                Ok(Record {
                    key: key_serde.deserialize(r.key.as_deref())?,
                    value: value_serde.deserialize(r.value.as_deref())?,
                    timestamp: r.timestamp,
                    headers: r.headers,
                })
            })
            .collect()
    }

    /// `key`'s windows in window store `store` starting in `[from, to)`, as
    /// `(start, value)`.
    ///
    /// # Errors
    /// Fails when no task has the store, it is not a window store, or the types differ.
    pub fn window_fetch<K: 'static, V: 'static>(
        &mut self,
        store: &str,
        key: &K,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, V)>, StateError> {
        for task in self.tasks.values_mut() {
            match task.stores_mut().typed_window::<K, V>(store) {
                Ok(view) => return view.fetch(key, from, to),
                Err(StateError::Unknown(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StateError::Unknown(store.to_owned()))
    }

    /// Records operator `operator` found late (after their window closed) so far.
    pub fn late_records(&self, operator: &str) -> u64 {
        self.counts.get(operator).map_or(0, |c| c.late)
    }

    /// Times operator `operator`'s idle-input policy advanced its time so far.
    pub fn idle_advances(&self, operator: &str) -> u64 {
        self.counts.get(operator).map_or(0, |c| c.idle_advances)
    }

    fn add_counts(counts: &mut BTreeMap<String, OperatorCounts>, task: &mut TaskGraph) {
        for (operator, n) in task.take_operator_counts() {
            let total = counts.entry(operator).or_default();
            total.late += n.late;
            total.idle_advances += n.idle_advances;
        }
    }

    /// Closes every processor (their `close` runs), ending the test.
    pub fn close(mut self) {
        for task in self.tasks.values_mut() {
            task.close();
        }
    }

    /// Reads `key` from store `store`.
    ///
    /// # Errors
    /// Fails when no task has the store or the types differ.
    pub fn store_get<K: 'static, V: 'static>(
        &mut self,
        store: &str,
        key: &K,
    ) -> Result<Option<V>, StateError> {
        for task in self.tasks.values_mut() {
            match task.stores_mut().typed::<K, V>(store) {
                Ok(view) => return view.get(key),
                Err(StateError::Unknown(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StateError::Unknown(store.to_owned()))
    }
}
