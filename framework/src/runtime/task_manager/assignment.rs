//! A thread's share of the group's assignment: tasks created (paused until restored) for
//! assigned partitions, and revoked or lost ones closed.

use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::TopicPartitionList;

use super::TaskManager;
use crate::runtime::active_task::{ActiveTask, TaskInput};
use crate::runtime::cadence::Duty;
use crate::runtime::task_phase::TaskPhase;
use crate::runtime::RuntimeError;
use crate::shared::StateSource;
use crate::task::{TaskGraph, TaskId};

impl TaskManager {
    /// Creates tasks for newly assigned partitions; they stay paused until restored.
    pub(crate) fn on_assigned<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        assigned: &TopicPartitionList,
    ) {
        self.assigned = true;
        self.cadence.clear(Duty::Report);
        // New tasks look up where they start at once.
        self.cadence.clear(Duty::StartLookup);
        if let Err(e) = self.assign(consumer, assigned) {
            self.fail(e);
        }
    }

    pub(super) fn assign<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        assigned: &TopicPartitionList,
    ) -> Result<(), RuntimeError> {
        if assigned.count() == 0 {
            return Ok(());
        }
        self.check_timeline()?;
        self.abandon_round(consumer);
        consumer
            .pause(assigned)
            .map_err(|source| RuntimeError::Kafka {
                what: "pausing newly assigned partitions".to_owned(),
                source,
            })?;
        // A task with several inputs starts only once this member holds all of them; it may
        // get them over several assignments.
        let held = consumer.assignment().unwrap_or_default();
        for (id, topic) in self.task_ids(assigned) {
            if let Some(task) = self.tasks.get_mut(&id) {
                if let Some(input) = task.input_mut(&topic) {
                    input.assigned = true;
                }
                continue;
            }
            let task = self.create_task(id, |t| {
                t == topic || held.find_partition(t, id.partition).is_some()
            })?;
            if task.fully_assigned() {
                tracing::info!(thread = self.thread, task = %id, "task assigned");
            } else {
                tracing::info!(thread = self.thread, task = %id, "task assigned; waiting for the rest of its input partitions");
            }
            self.tasks.insert(id, task);
        }
        Ok(())
    }

    /// The tasks of the partitions in `list` that the app reads, with their topics.
    fn task_ids(&self, list: &TopicPartitionList) -> Vec<(TaskId, String)> {
        list.elements()
            .iter()
            .filter_map(|e| {
                let id = self.shared.plan.task_id(e.topic(), e.partition())?;
                Some((id, e.topic().to_owned()))
            })
            .collect()
    }

    /// Creates task `id` with an input per source topic of its sub-topology; `held` says
    /// which of them this member holds now.
    fn create_task(
        &self,
        id: TaskId,
        held: impl Fn(&str) -> bool,
    ) -> Result<ActiveTask, RuntimeError> {
        let shared = &self.shared;
        let app = &shared.config.application.id;
        let sub = shared
            .topology
            .sub_topologies()
            .iter()
            .find(|s| s.id == id.sub_topology)
            .ok_or(RuntimeError::Restore {
                task: id,
                reason: crate::runtime::RestoreFailure::UnknownSubTopology(id.sub_topology),
            })?;
        let defs: Vec<_> = sub
            .stores
            .iter()
            .filter_map(|name| shared.topology.stores.get(name).cloned())
            .collect();
        let handed_over = self.shared.standbys.release(id);
        let (stores, mut state_source) =
            crate::runtime::task_base::open_stores(&self.shared, id, &defs)?;
        if handed_over && state_source == StateSource::Local {
            state_source = StateSource::Standby;
        }
        shared.metrics.add_task_start(state_source);
        let mut graph = TaskGraph::new(
            &shared.topology,
            sub,
            app,
            id.partition,
            stores,
            shared.plan.partitions.clone().into_iter().collect(),
        );
        let inputs: Vec<TaskInput> = shared
            .plan
            .inputs
            .get(&id.sub_topology)
            .into_iter()
            .flatten()
            .map(|topic| {
                let table = shared.plan.table_inputs.contains(topic);
                TaskInput::new(topic.clone(), held(topic), table)
            })
            .collect();
        let external = graph
            .two_phase_sinks()
            .next()
            .is_some()
            .then(super::ExternalCommits::starting);
        Ok(ActiveTask {
            external,
            span: tracing::info_span!("task", task = %id, thread = self.thread),
            phase: TaskPhase::assigned(inputs.iter().map(|i| i.topic.as_str())),
            id,
            inputs,
            graph,
            state_source,
            replays: Vec::new(),
            created: Instant::now(),
            changelogs_in_transaction: false,
        })
    }

    /// Commits, then closes the revoked tasks cleanly (their state stays on disk).
    pub(crate) fn on_revoked<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        revoked: &TopicPartitionList,
        lost: bool,
    ) {
        if self.halt.is_some() {
            self.drop_all_dirty();
            return;
        }
        if lost {
            // Another member may own these partitions already: nothing of the open
            // transaction may commit. Abort it and start over.
            self.reset_dirty("partitions were lost");
            return;
        }
        if revoked.count() > 0 {
            self.abandon_round(consumer);
        }
        if let Err(e) = self.commit(consumer) {
            self.fail(e);
            return;
        }
        if self.halt.is_some() {
            self.drop_all_dirty();
            return;
        }
        let mut closed = Vec::new();
        // A task closes when any of its inputs leaves; the inputs it still holds pause until
        // the task is whole again here (or they leave too).
        let leaving: Vec<(String, i32)> = revoked
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let mut orphans = TopicPartitionList::new();
        for (id, _) in self.task_ids(revoked) {
            if let Some(task) = self.tasks.remove(&id) {
                for input in &task.inputs {
                    let key = (input.topic.clone(), id.partition);
                    if input.assigned && !leaving.contains(&key) {
                        orphans.add_partition(&input.topic, id.partition);
                    }
                }
                task.close();
                tracing::info!(thread = self.thread, task = %id, "task revoked");
                closed.push(id);
            }
        }
        if orphans.count() > 0 {
            if let Err(source) = consumer.pause(&orphans) {
                self.fail(RuntimeError::Kafka {
                    what: "pausing the inputs of a task that lost one".to_owned(),
                    source,
                });
                return;
            }
        }
        self.shared.status.remove_readers(&closed);
        self.shared.standbys.active_closed(&closed);
        self.cadence.clear(Duty::Report);
        if let Err(e) = self.restorer.forget(&closed) {
            self.fail(e);
        }
    }
}
