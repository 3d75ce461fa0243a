//! A stream thread's part in a savepoint: pause external inputs at a commit boundary, drain
//! repartition inputs level by level, snapshot every task, resume.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::TopicPartitionList;

use super::checkpoint::publish;
use super::TaskManager;
use crate::record::wall_clock_ms;
use crate::runtime::cadence::Duty;
use crate::runtime::RuntimeError;
use crate::snapshot::{
    put_json, savepoint_key, ControlMessage, InputOffset, SnapshotError, SnapshotStore,
    StoreLocation,
};
use crate::state::StoreKind;
use crate::task::TaskId;

/// How often an idle thread looks at the control topic.
const IDLE_POLL: Duration = Duration::from_millis(100);

/// An input partition of a task with an offset: `(task, topic, offset)`.
type InputAt = (TaskId, String, i64);

/// A savepoint this thread takes part in.
pub(super) struct Round {
    id: String,
    target: Arc<dyn SnapshotStore>,
    deadline_ms: i64,
    /// External input partitions paused for the savepoint.
    paused: Vec<(String, i32)>,
    /// Repartition partitions being drained, with the offset to reach.
    draining: Option<(u32, Vec<InputAt>)>,
}

impl TaskManager {
    /// Reads the control topic and moves a savepoint in progress forward.
    pub(crate) fn control_step<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<(), RuntimeError> {
        let Some(control) = &self.control else {
            return Ok(());
        };
        let busy = self.round.is_some();
        if !busy && !self.cadence.is_due(Duty::ControlPoll, IDLE_POLL) {
            return Ok(());
        }
        self.cadence.ran(Duty::ControlPoll);
        let mut messages = Vec::new();
        while let Some(m) = control
            .poll(Duration::ZERO)
            .map_err(RuntimeError::Savepoint)?
        {
            messages.push(m);
        }
        for message in messages {
            self.on_control(consumer, message)?;
        }
        if let Some(round) = &self.round {
            if wall_clock_ms() > round.deadline_ms {
                tracing::warn!(savepoint = round.id, "savepoint deadline passed; resuming");
                self.end_round(consumer);
            }
        }
        self.drain_progress(consumer)
    }

    fn report(&self, message: &ControlMessage) {
        if let Some(control) = &self.control {
            if let Err(e) = control.send(message, Duration::from_secs(10)) {
                tracing::warn!(error = %e, "cannot report to the control topic");
            }
        }
    }

    fn fail_round<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        id: &str,
        reason: &str,
    ) {
        tracing::warn!(savepoint = id, reason, "cannot take part in the savepoint");
        self.report(&ControlMessage::SavepointFailed {
            id: id.to_owned(),
            thread: self.thread.clone(),
            reason: reason.to_owned(),
        });
        if self.round.as_ref().is_some_and(|r| r.id == id) {
            self.end_round(consumer);
        }
    }

    /// Gives up a savepoint in progress because the assignment changed.
    pub(super) fn abandon_round<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        if let Some(id) = self.round.as_ref().map(|r| r.id.clone()) {
            self.fail_round(consumer, &id, "the group rebalanced during the savepoint");
        }
    }

    /// Resumes the inputs paused for the savepoint.
    fn end_round<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) {
        let Some(round) = self.round.take() else {
            return;
        };
        let mut tpl = TopicPartitionList::new();
        for (topic, partition) in &round.paused {
            let owned = self
                .shared
                .plan
                .task_id(topic, *partition)
                .and_then(|id| self.tasks.get(&id))
                .is_some_and(|t| t.phase.is_running());
            if owned {
                tpl.add_partition(topic, *partition);
            }
        }
        if tpl.count() > 0 {
            if let Err(e) = consumer.resume(&tpl) {
                self.reset_dirty(&format!("resuming inputs after a savepoint failed: {e}"));
            }
        }
        tracing::info!(savepoint = round.id, "inputs resumed");
    }

    fn on_control<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        message: ControlMessage,
    ) -> Result<(), RuntimeError> {
        match message {
            ControlMessage::SavepointBegin {
                id,
                target,
                deadline_ms,
            } => self.begin_round(consumer, id, target, deadline_ms),
            ControlMessage::SavepointDrain { id, level } => {
                if self.round.as_ref().is_none_or(|r| r.id != id) {
                    self.fail_round(consumer, &id, "this thread is not paused for the savepoint (it joined or restarted since)");
                    return Ok(());
                }
                self.start_drain(consumer, level)
            }
            ControlMessage::SavepointSnapshot { id } => {
                if self.round.as_ref().is_none_or(|r| r.id != id) {
                    self.fail_round(consumer, &id, "this thread is not paused for the savepoint");
                    return Ok(());
                }
                self.snapshot_round(consumer, &id)
            }
            ControlMessage::SavepointEnd { id, completed } => {
                if self.round.as_ref().is_some_and(|r| r.id == id) {
                    tracing::info!(savepoint = id, completed, "savepoint ended");
                    self.end_round(consumer);
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn begin_round<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        id: String,
        target: String,
        deadline_ms: i64,
    ) -> Result<(), RuntimeError> {
        if self.round.is_some() {
            self.fail_round(consumer, &id, "another savepoint is in progress");
            return Ok(());
        }
        if let Some(t) = self.tasks.values().find(|t| !t.phase.is_running()) {
            let reason = format!("task {} is still restoring", t.id);
            self.fail_round(consumer, &id, &reason);
            return Ok(());
        }
        let opened = StoreLocation::parse(&target)
            .and_then(|location| location.open(&self.shared.config.snapshot.s3));
        let target = match opened {
            Ok(store) => store,
            Err(e) => {
                self.fail_round(consumer, &id, &format!("opening the store {target}: {e}"));
                return Ok(());
            }
        };
        self.commit(consumer)?;
        if self.halt.is_some() {
            return Ok(());
        }
        let mut paused = Vec::new();
        let mut tpl = TopicPartitionList::new();
        for task in self.tasks.values() {
            for input in &task.inputs {
                if !self.shared.plan.repartition.contains(&input.topic) {
                    tpl.add_partition(&input.topic, task.id.partition);
                    paused.push((input.topic.clone(), task.id.partition));
                }
            }
        }
        if tpl.count() > 0 {
            consumer.pause(&tpl).map_err(|source| RuntimeError::Kafka {
                what: "pausing inputs for a savepoint".to_owned(),
                source,
            })?;
        }
        tracing::info!(
            savepoint = id,
            paused = paused.len(),
            "inputs paused for a savepoint"
        );
        self.round = Some(Round {
            id: id.clone(),
            target,
            deadline_ms,
            paused,
            draining: None,
        });
        self.report(&ControlMessage::SavepointPaused {
            id,
            thread: self.thread.clone(),
            tasks: self.tasks.keys().map(ToString::to_string).collect(),
            all_tasks: self
                .shared
                .plan
                .tasks
                .iter()
                .map(ToString::to_string)
                .collect(),
            levels: self.shared.plan.levels(),
            topology: self.shared.fingerprint.clone(),
        });
        Ok(())
    }

    fn start_drain<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        level: u32,
    ) -> Result<(), RuntimeError> {
        let mut targets = Vec::new();
        for task in self.tasks.values() {
            if self.shared.plan.depth.get(&task.id.sub_topology) != Some(&level) {
                continue;
            }
            for input in &task.inputs {
                // The consumer is read_committed: its high watermark is the last stable
                // offset.
                let (_, end) = crate::kafka::watermarks(
                    consumer,
                    &input.topic,
                    task.id.partition,
                    Duration::from_secs(10),
                )
                .map_err(|source| RuntimeError::Kafka {
                    what: format!(
                        "reading the end of `{}` [{}]",
                        input.topic, task.id.partition
                    ),
                    source,
                })?;
                targets.push((task.id, input.topic.clone(), end));
            }
        }
        if let Some(round) = &mut self.round {
            round.draining = Some((level, targets));
        }
        self.drain_progress(consumer)
    }

    /// The next offset each of `ids`'s input partitions will deliver: the consumer's position,
    /// or the committed offset when nothing was read since assignment.
    fn input_positions<C: ConsumerContext>(
        &self,
        consumer: &BaseConsumer<C>,
        ids: &[TaskId],
    ) -> Result<Vec<InputAt>, RuntimeError> {
        let kafka = |what: &str| {
            let what = what.to_owned();
            move |source| RuntimeError::Kafka { what, source }
        };
        let offset_of = crate::kafka::offset_in;
        // A partition read since assignment has a position, which is at or past its committed
        // offset (reading starts there): ask the broker only about the others.
        let positions = consumer
            .position()
            .map_err(kafka("reading input positions"))?;
        let mut unread = TopicPartitionList::new();
        for id in ids {
            for input in self.tasks.get(id).into_iter().flat_map(|t| &t.inputs) {
                if offset_of(&positions, &input.topic, id.partition).is_none() {
                    unread.add_partition(&input.topic, id.partition);
                }
            }
        }
        let committed = if unread.count() == 0 {
            unread
        } else {
            consumer
                .committed_offsets(unread, Duration::from_secs(10))
                .map_err(kafka("reading committed input offsets"))?
        };
        let mut out = Vec::new();
        for id in ids {
            for input in self.tasks.get(id).into_iter().flat_map(|t| &t.inputs) {
                // Buffered records (a task with several inputs) were read, not processed.
                let known = input
                    .next_unprocessed()
                    .or_else(|| offset_of(&positions, &input.topic, id.partition))
                    .or_else(|| offset_of(&committed, &input.topic, id.partition));
                let offset = match known {
                    Some(o) => o,
                    // Nothing read or committed yet: the consumer starts at the log's start.
                    None => {
                        crate::kafka::watermarks(
                            consumer,
                            &input.topic,
                            id.partition,
                            Duration::from_secs(10),
                        )
                        .map_err(kafka("reading the start of an input"))?
                        .0
                    }
                };
                out.push((*id, input.topic.clone(), offset));
            }
        }
        Ok(out)
    }

    fn drain_progress<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<(), RuntimeError> {
        let Some((level, targets)) = self.round.as_ref().and_then(|r| r.draining.clone()) else {
            return Ok(());
        };
        let ids: Vec<TaskId> = targets.iter().map(|(id, _, _)| *id).collect();
        let positions = self.input_positions(consumer, &ids)?;
        let done = targets.iter().all(|(id, topic, target)| {
            positions
                .iter()
                .any(|(p, t, offset)| p == id && t == topic && offset >= target)
        });
        if !done {
            return Ok(());
        }
        self.commit(consumer)?;
        let Some(round) = &mut self.round else {
            return Ok(());
        };
        round.draining = None;
        let id = round.id.clone();
        tracing::info!(savepoint = id, level, "drained");
        self.report(&ControlMessage::SavepointDrained {
            id,
            thread: self.thread.clone(),
            level,
        });
        Ok(())
    }

    fn snapshot_round<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        id: &str,
    ) -> Result<(), RuntimeError> {
        self.commit(consumer)?;
        let started = Instant::now();
        match self.snapshot_tasks(consumer, id) {
            Ok(tasks) => {
                tracing::info!(savepoint = id, tasks = tasks.len(), took = ?started.elapsed(), "tasks snapshotted");
                self.report(&ControlMessage::SavepointSnapshotted {
                    id: id.to_owned(),
                    thread: self.thread.clone(),
                    tasks,
                });
            }
            Err(e) => self.fail_round(consumer, id, &e.to_string()),
        }
        Ok(())
    }

    fn snapshot_tasks<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        id: &str,
    ) -> Result<Vec<String>, RuntimeError> {
        let ids: Vec<TaskId> = self.tasks.keys().copied().collect();
        let positions = self.input_positions(consumer, &ids)?;
        let mut written = Vec::new();
        for task_id in ids {
            let Some(task) = self.tasks.get(&task_id) else {
                continue;
            };
            let memory = task
                .graph
                .stores()
                .changelogged()
                .into_iter()
                .filter(|(store, _)| {
                    self.shared
                        .topology
                        .stores
                        .get(store)
                        .is_some_and(|s| s.kind == StoreKind::InMemory)
                })
                .map(|(store, _)| store)
                .next();
            if let Some(store) = memory {
                return Err(RuntimeError::Savepoint(SnapshotError::Failed {
                    id: id.to_owned(),
                    reason: format!("task {task_id} has the in-memory store `{store}`; savepoints cover RocksDB stores only"),
                }));
            }
            let stream_time = task.graph.stream_time();
            let inputs: Vec<InputOffset> = positions
                .iter()
                .filter(|(id, _, _)| *id == task_id)
                .map(|(_, topic, offset)| InputOffset {
                    internal: self.shared.plan.repartition.contains(topic),
                    topic: topic.clone(),
                    partition: task_id.partition,
                    offset: *offset,
                    stream_time: (stream_time >= 0).then_some(stream_time),
                })
                .collect();
            let key = crate::snapshot::paths::savepoint_task(
                &savepoint_key(&self.shared.config.application.id, id),
                task_id,
            );
            let Some(round) = &self.round else { break };
            let target = round.target.clone();
            match self.local_checkpoint(task, inputs.clone())? {
                Some(local) => {
                    publish(target.as_ref(), &self.checkpointer.cache, local, &key)
                        .map_err(RuntimeError::Savepoint)?;
                }
                None => {
                    // A stateless task: its part records only its input position.
                    let part = crate::snapshot::TaskSnapshot {
                        task: task_id.to_string(),
                        epoch: None,
                        files: Vec::new(),
                        stores: Vec::new(),
                        inputs,
                        created_ms: wall_clock_ms(),
                    };
                    put_json(target.as_ref(), &key, &part).map_err(RuntimeError::Savepoint)?;
                }
            }
            written.push(task_id.to_string());
        }
        Ok(written)
    }
}
