//! A stream thread's tasks and its producer: creates and restores tasks, processes records,
//! and commits outputs, changelogs and input offsets in one transaction.

mod assignment;
mod bounded;
mod checkpoint;
mod commit;
mod external;
mod merge;
mod process;
mod purge;
mod record_errors;
mod report;
mod rewind;
mod savepoint;
mod seeks;
mod start;
mod tables;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::TopicPartitionList;

pub(crate) use super::external_commits::ExternalCommits;
pub(crate) use crate::runtime::shared_state::Shared;

use super::active_task::ActiveTask;
use super::cadence::{Cadence, Duty};
use super::fault::Fault;
use super::restore::Restorer;
use super::RuntimeError;
use crate::kafka::OutputProducer;
use crate::record::{wall_clock_ms, RawRecord};
use crate::snapshot::ControlChannel;
use crate::task::TaskId;

/// Why a generation of a stream thread ends: what each loop step returns when it ends it
/// (see [`TaskManager::step`]).
#[derive(Debug)]
pub(crate) enum Halt {
    /// Aborted: start over from the last commit, for this reason.
    StartOver(String),
    /// Shut down cleanly: committed, tasks closed.
    ShutDown,
    /// An error ended it, in a step or in a rebalance callback. The open transaction is
    /// aborted before the consumer closes ([`TaskManager::abandon`]); the error's
    /// [`action`](RuntimeError::action) decides whether the thread starts over or stops.
    Failed(RuntimeError),
}

/// The tasks and transaction of one stream thread.
pub(crate) struct TaskManager {
    shared: Arc<Shared>,
    thread: String,
    producer: OutputProducer,
    restorer: Restorer,
    tasks: BTreeMap<TaskId, ActiveTask>,
    /// When each periodic duty (commit, stable check, lookups, control poll, report,
    /// progress log, checkpoint) last ran.
    cadence: Cadence,
    commits: u64,
    /// Commits that carried state changes.
    state_commits: u64,
    /// Commits in which two-phase sinks prepared something.
    external_commits: u64,
    fault: Fault,
    out: Vec<RawRecord>,
    /// Set once the generation ends: it starts over from the last commit, it shut down, or
    /// an error raised in a rebalance callback waits to be returned by the next loop step.
    /// Whichever it is, rebalance callbacks commit nothing more.
    halt: Option<Halt>,
    /// The app's control topic (savepoint coordination).
    control: Option<ControlChannel>,
    /// The savepoint this thread takes part in.
    round: Option<savepoint::Round>,
    checkpointer: checkpoint::Checkpointer,
    /// True once the consumer received an assignment in this generation.
    assigned: bool,
    /// Consumer moves to committed offsets, applied at the next loop step.
    seeks: Vec<seeks::Seek>,
    /// When refused seeks are tried again.
    seek_retry_at: Option<std::time::Instant>,
    /// Set when the tasks were dropped for a rewind: the next loop step creates them again.
    rewound: bool,
    /// Since when restored tasks wait to confirm their committed offsets.
    unconfirmed_since: Option<std::time::Instant>,
    /// Deletes committed records of the repartition topics this thread reads.
    purger: purge::Purger,
    /// Set when another producer registered this thread's transactional id.
    producer_fenced: bool,
    /// Reads the control topic from its beginning for the timeline check.
    timeline_reader: Option<ControlChannel>,
    /// The consumer's positions by input partition as last read, and when (tasks with
    /// several inputs).
    positions: Option<merge::Positions>,
    /// In a bounded run: the ends of repartition inputs, read once their writers finished.
    bounded_ends: std::collections::HashMap<(String, i32), i64>,
    /// The last restore record the timeline check saw: `(savepoint, epoch)`.
    last_restore: Option<(String, String)>,
    /// True when the last poll found nothing fetched: every record at hand is processed.
    caught_up: bool,
}

impl TaskManager {
    pub(crate) fn new(
        shared: Arc<Shared>,
        thread: String,
        producer: OutputProducer,
        fault: Fault,
    ) -> Result<Self, RuntimeError> {
        let restorer = Restorer::new(
            &shared.config.kafka,
            producer.transactional_id(),
            Arc::clone(&shared.metrics),
            shared.topology.stores.values().any(|s| s.changelog),
        )?;
        let control = ControlChannel::open(
            &shared.config.kafka,
            &shared.config.application.id,
            &thread,
            false,
        )
        .map_err(RuntimeError::Savepoint)?;
        Ok(TaskManager {
            thread,
            producer,
            restorer,
            tasks: BTreeMap::new(),
            cadence: Cadence::starting(&[
                Duty::Commit,
                Duty::ControlPoll,
                Duty::ProgressLog,
                Duty::Checkpoint,
                Duty::ExternalResolve,
            ]),
            commits: 0,
            state_commits: 0,
            external_commits: 0,
            fault,
            out: Vec::new(),
            halt: None,
            caught_up: false,
            control: Some(control),
            round: None,
            checkpointer: checkpoint::Checkpointer::new(),
            assigned: false,
            seeks: Vec::new(),
            rewound: false,
            seek_retry_at: None,
            unconfirmed_since: None,
            purger: purge::Purger::new(shared.config.processing.repartition_purge_interval),
            producer_fenced: false,
            timeline_reader: None,
            bounded_ends: std::collections::HashMap::new(),
            positions: None,
            last_restore: None,
            shared,
        })
    }

    /// Runs one step of the processing loop and returns whether the generation ended in it:
    /// `Err` with the step's error, or with the start-over the step recorded (the commit
    /// protocol aborts and records it where it meets the failure), else `Ok`.
    pub(crate) fn step(
        &mut self,
        step: impl FnOnce(&mut Self) -> Result<(), RuntimeError>,
    ) -> Result<(), Halt> {
        step(self).map_err(Halt::Failed)?;
        self.halted()
    }

    /// `Err` with what ended the generation, if something did: rebalance callbacks (run
    /// inside the consumer's poll, where they cannot return anything) leave it here. An
    /// error is handed out once; a start-over or shutdown stays recorded, so callbacks that
    /// follow commit nothing.
    pub(crate) fn halted(&mut self) -> Result<(), Halt> {
        match self.halt.take() {
            None => Ok(()),
            Some(Halt::Failed(e)) => Err(Halt::Failed(e)),
            Some(Halt::StartOver(reason)) => {
                self.halt = Some(Halt::StartOver(reason.clone()));
                Err(Halt::StartOver(reason))
            }
            Some(Halt::ShutDown) => {
                self.halt = Some(Halt::ShutDown);
                Err(Halt::ShutDown)
            }
        }
    }

    /// Records an error raised inside a rebalance callback, for the next loop step to
    /// return. It ends the generation like a start-over does (nothing more commits), and
    /// outranks one (the error decides whether the thread stops); the first error wins,
    /// and nothing replaces a clean shutdown.
    fn fail(&mut self, e: RuntimeError) {
        match &self.halt {
            None | Some(Halt::StartOver(_)) => self.halt = Some(Halt::Failed(e)),
            Some(Halt::Failed(_) | Halt::ShutDown) => {
                tracing::debug!(thread = self.thread, error = %e, "after the generation ended");
            }
        }
    }

    /// How long the next consumer poll may block.
    pub(crate) fn poll_timeout(&self) -> Duration {
        if self.restorer.busy() || self.tasks.values().any(|t| !t.phase.is_running()) {
            return Duration::ZERO;
        }
        if self.has_buffered() {
            // Records wait for another input or for the next loop step: poll briefly.
            return Duration::from_millis(10);
        }
        let processing = &self.shared.config.processing;
        let interval = processing.commit_interval;
        if !self.producer.in_transaction() {
            interval
        } else if self.eager_commits() {
            // A transaction is open: once the gap has passed, the next poll that finds
            // nothing fetched commits it.
            self.cadence
                .until_due(Duty::Commit, processing.commit_min_gap)
        } else {
            self.cadence.until_due(Duty::Commit, interval)
        }
    }

    /// The thread is about to wait for input: the outputs its producer holds back for
    /// `linger.ms` go out now, as nothing would join their batches before the wait ends.
    /// False when the generation has ended (a rebalance callback inside the last poll
    /// halted it), so the thread does not wait.
    pub(crate) fn idle(&mut self) -> bool {
        if self.halt.is_some() {
            return false;
        }
        self.producer.send_lingering();
        true
    }

    /// Notes what the last poll found: `fetched` false means every record at hand is
    /// processed, so an open transaction may commit before its interval.
    pub(crate) fn polled(&mut self, fetched: bool) {
        self.caught_up = !fetched;
    }

    /// Moves restoring tasks forward; resumes the input of tasks that finished.
    pub(crate) fn restore_step<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<(), RuntimeError> {
        let waiting: Vec<TaskId> = self
            .tasks
            .values()
            .filter(|t| !t.phase.is_running())
            .map(|t| t.id)
            .collect();
        self.release_held(consumer)?;
        if waiting.is_empty() {
            return Ok(());
        }
        // The committed offset first: it settles only once the previous owner's last
        // transaction has ended, and only then does the changelog's end hold every change
        // that offset stands for. (That transaction's changelog records may still be on their
        // way to the brokers after its offsets were accepted.)
        self.resolve_starts(consumer, &waiting)?;
        if self
            .cadence
            .run_if_due(Duty::StableCheck, Duration::from_millis(100))
        {
            for id in &waiting {
                if let Some(task) = self.tasks.get_mut(id).filter(|t| t.phase.is_settled()) {
                    match self.restorer.start(task) {
                        Ok(()) => {}
                        // A broker restarting or a leader moving: ask again at the next check.
                        Err(e) if e.is_recoverable() => {
                            tracing::warn!(task = %id, error = %e, "cannot plan the restore yet");
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        self.restorer
            .step(&mut self.tasks, Duration::from_millis(50))?;
        let restored: Vec<TaskId> = waiting
            .into_iter()
            .filter(|id| self.tasks.get(id).is_some_and(|t| t.phase.restored()))
            .collect();
        if restored.is_empty() {
            return Ok(());
        }
        let restored = self.confirm_starts(consumer, restored)?;
        for id in &restored {
            self.start_where_state_stands(*id);
        }
        let now = wall_clock_ms();
        let mut resume = TopicPartitionList::new();
        for id in restored {
            // What earlier owners left prepared in two-phase sinks is resolved before the
            // task processes anything.
            if self.tasks.get(&id).is_some_and(|t| t.external.is_some()) {
                self.recover_external(consumer, id)?;
            }
            if let Some(task) = self.tasks.get_mut(&id) {
                task.graph
                    .init(now)
                    .map_err(|source| RuntimeError::Task { task: id, source })?;
                if !task.phase.run() {
                    continue;
                }
                if self.shared.config.processing.load_tables_first {
                    tables::hold_streams(task);
                }
                self.shared
                    .status
                    .add_readers(id, task.graph.stores_mut().readers());
                for input in task.inputs.iter().filter(|i| !i.held) {
                    resume.add_partition(&input.topic, id.partition);
                    if let Some(start) = input.start {
                        // librdkafka does not wake its fetcher when a partition resumes, so
                        // the first fetch may wait up to a second; a seek to where the task
                        // starts anyway starts fetching at once.
                        self.seeks.push(seeks::Seek::to(
                            &input.topic,
                            id.partition,
                            start,
                            input.position_ahead,
                        ));
                    }
                }
                let starts: Vec<Option<i64>> = task.inputs.iter().map(|i| i.start).collect();
                tracing::info!(thread = self.thread, task = %id, start = ?starts, "task running");
            }
        }
        if resume.count() > 0 {
            consumer
                .resume(&resume)
                .map_err(|source| RuntimeError::Kafka {
                    what: "resuming restored partitions".to_owned(),
                    source,
                })?;
        }
        Ok(())
    }

    /// Clean shutdown: commits, then closes every task.
    pub(crate) fn shutdown<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<(), RuntimeError> {
        self.commit(consumer)?;
        self.finish_checkpoints(Duration::from_secs(30));
        if self.halt.is_some() {
            return Ok(());
        }
        let tasks = std::mem::take(&mut self.tasks);
        let ids: Vec<TaskId> = tasks.keys().copied().collect();
        self.shared.status.remove_readers(&ids);
        self.shared.standbys.active_closed(&ids);
        for task in tasks.into_values() {
            task.close();
        }
        // Later rebalance callbacks (leaving the group) find nothing to commit.
        self.halt = Some(Halt::ShutDown);
        Ok(())
    }

    /// Reads the control topic on to its end and notes the last savepoint restore applied to
    /// the app. The first read of a generation opens a reader and reads the topic from its
    /// beginning; the thread runs it while it joins the group, so the check at each
    /// assignment reads only what came since.
    pub(crate) fn read_timeline(&mut self) {
        // The last restore record survives compaction (key `restored`); the thread's own
        // channel starts at the topic's end, so one reader per generation reads the topic
        // from its beginning, and then on from where it stopped.
        if self.timeline_reader.is_none() {
            match ControlChannel::open(
                &self.shared.config.kafka,
                &self.shared.config.application.id,
                &format!("{}-timeline", self.thread),
                true,
            ) {
                Ok(reader) => self.timeline_reader = Some(reader),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the control topic to check the timeline");
                    return;
                }
            }
        }
        let Some(reader) = &self.timeline_reader else {
            return;
        };
        let messages = match reader.read_to_end(Duration::from_secs(10)) {
            Ok(messages) => messages,
            Err(e) => {
                // A restore needs the control topic too; without it none can have happened
                // that this instance could learn of.
                tracing::warn!(error = %e, "cannot read the control topic to check the timeline");
                return;
            }
        };
        if let Some(latest) = messages.iter().rev().find_map(|m| match m {
            crate::snapshot::ControlMessage::Restored {
                savepoint, epoch, ..
            } => Some((savepoint.clone(), epoch.clone())),
            _ => None,
        }) {
            self.last_restore = Some(latest);
        }
    }

    /// Before tasks are created: reads the control topic to its end and stops the thread when
    /// a savepoint was applied to the app since this instance established its timeline (it
    /// was paused or cut off meanwhile and rejoined without restarting). Its local state
    /// belongs to the old timeline, and writing it into the new one would undo the restore.
    fn check_timeline(&mut self) -> Result<(), RuntimeError> {
        self.read_timeline();
        let ours = self.shared.timeline.epoch();
        let moved = self
            .last_restore
            .clone()
            .filter(|(_, epoch)| Some(epoch.as_str()) != ours);
        match moved {
            Some((savepoint, epoch)) => Err(RuntimeError::TimelineMoved {
                savepoint,
                epoch,
                ours: ours.unwrap_or("none").to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// True when another producer registered this thread's transactional id during the
    /// generation.
    pub(crate) fn producer_fenced(&self) -> bool {
        self.producer_fenced
    }

    /// True once this generation committed a transaction.
    pub(crate) fn committed_any(&self) -> bool {
        self.commits > 0
    }

    /// After a fatal error: aborts what is open so nothing half-done commits.
    pub(crate) fn abandon(&mut self) {
        self.reset_dirty("stopping after an error");
    }
}
