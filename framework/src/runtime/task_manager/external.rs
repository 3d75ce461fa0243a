//! Two-phase sinks in a stream thread's commits: the prepare before and the commit after
//! each Kafka commit, the rollback on abort, and the resolution of what earlier owners left
//! prepared (see [`crate::two_phase`] for the sink's side).
//!
//! Resolution is safe because of two orders. A sink prepares only after the task's input
//! offsets joined the Kafka transaction, so while a prepared transaction exists, its Kafka
//! transaction holds those offsets pending (or the group refused them and it can never
//! commit). And a resolution lists the prepared transactions, then reads the committed offsets
//! stably (a read_committed lookup waits out pending offsets), then lists again:
//!
//! - listed after the lookup, and named by the committed offsets' mark (same owner, sequence
//!   at most the mark's): Kafka committed it → commit.
//! - listed before the lookup and not named by the mark: its Kafka transaction had ended
//!   without it, or can never commit → roll back.
//! - listed only after the lookup and not named: it may belong to a newer owner whose Kafka
//!   transaction is still open → left for a later pass.

use std::collections::HashSet;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::TopicPartitionList;

use super::TaskManager;
use crate::backoff::Backoff;
use crate::runtime::cadence::Duty;
use crate::runtime::stream_time::{decode_mark, CommitMark};
use crate::runtime::RuntimeError;
use crate::task::TaskId;
use crate::two_phase::{CommitId, Resolved};

/// How often a thread resolves what was left prepared for its running tasks (a zombie's
/// work) and measures the oldest prepared transaction's age.
const RESOLVE_INTERVAL: Duration = Duration::from_secs(30);

/// How long one stable committed-offset lookup may wait for a pending transaction.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);

/// What a resolution pass does with one prepared transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Kafka committed it.
    Commit,
    /// Kafka did not and will not commit it.
    RollBack,
    /// Not decidable yet (possibly a newer owner's, in flight), or this owner's own.
    Leave,
}

/// Decides the fate of `prepared` (listed after the lookup that read `mark`; `listed_before`
/// when the listing before the lookup had it too), for the task's current owner `me`.
pub(crate) fn decide(
    prepared: &CommitId,
    mark: Option<&CommitMark>,
    listed_before: bool,
    me: &str,
) -> Decision {
    if prepared.owner == me {
        return Decision::Leave;
    }
    if mark.is_some_and(|m| m.owner == prepared.owner && prepared.sequence <= m.sequence) {
        Decision::Commit
    } else if listed_before {
        Decision::RollBack
    } else {
        Decision::Leave
    }
}

impl TaskManager {
    /// Prepares the two-phase sinks of tasks `marked` (whose offsets carry this commit's
    /// mark) for the open transaction, after its input offsets joined it. Returns how many
    /// tasks prepared anything.
    pub(super) fn prepare_external(&mut self, marked: &[TaskId]) -> Result<usize, RuntimeError> {
        let application = &self.shared.config.application.id;
        let mut prepared_tasks = 0;
        for id in marked {
            let Some(task) = self.tasks.get_mut(id) else {
                continue;
            };
            let Some(external) = task.external.as_mut() else {
                continue;
            };
            let mark = external.next_mark();
            let commit = CommitId {
                application: application.clone(),
                task: task.id,
                sequence: mark.sequence,
                owner: mark.owner,
            };
            // Set first: a sink that fails half-way is rolled back by the abort.
            external.prepared = Some(commit.clone());
            external.prepared_sinks.clear();
            for (i, sink) in task.graph.two_phase_sinks().enumerate() {
                // Counted before the call: a sink that fails may have prepared.
                external.prepared_sinks.push(i);
                let prepared = sink.prepare(&commit).map_err(|source| RuntimeError::Sink {
                    task: task.id,
                    source,
                })?;
                if !prepared {
                    external.prepared_sinks.pop();
                }
            }
            if !external.prepared_sinks.is_empty() {
                prepared_tasks += 1;
            } else {
                external.prepared = None;
            }
        }
        Ok(prepared_tasks)
    }

    /// After the Kafka commit of tasks `marked`: commits what their sinks prepared. A
    /// prepared transaction that vanished is an error unless the sink shows it committed.
    pub(super) fn commit_external(&mut self, marked: &[TaskId]) -> Result<(), RuntimeError> {
        // Taken out first: nothing Kafka committed may be rolled back by an abort that a
        // failure below leads to.
        let mut pending = Vec::new();
        for id in marked {
            if let Some(external) = self.tasks.get_mut(id).and_then(|t| t.external.as_mut()) {
                external.committed += 1;
                if let Some(commit) = external.prepared.take() {
                    pending.push((commit, std::mem::take(&mut external.prepared_sinks)));
                }
            }
        }
        for (commit, sinks) in pending {
            let Some(task) = self.tasks.get_mut(&commit.task) else {
                continue;
            };
            let prepared = task
                .graph
                .two_phase_sinks()
                .enumerate()
                .filter(|(i, _)| sinks.contains(i));
            for (_, sink) in prepared {
                let resolved = sink.commit(&commit).map_err(|source| RuntimeError::Sink {
                    task: commit.task,
                    source,
                })?;
                if resolved == Resolved::Missing {
                    let committed =
                        sink.is_committed(&commit)
                            .map_err(|source| RuntimeError::Sink {
                                task: commit.task,
                                source,
                            })?;
                    if !committed {
                        return Err(RuntimeError::SinkCommitLost {
                            task: commit.task,
                            sink: sink.name().to_owned(),
                            commit: commit.global_id(),
                        });
                    }
                    tracing::info!(task = %commit.task, sink = sink.name(), %commit, "prepared transaction already committed by a resolution pass");
                }
            }
        }
        Ok(())
    }

    /// On abort: rolls back what the sinks prepared and drops what they buffered. A rollback
    /// that fails leaves the transaction to the next owner's resolution.
    pub(super) fn abort_external(task: &mut crate::runtime::active_task::ActiveTask) {
        let Some(external) = task.external.as_mut() else {
            return;
        };
        let prepared = external.prepared.take();
        let sinks = std::mem::take(&mut external.prepared_sinks);
        for (i, sink) in task.graph.two_phase_sinks().enumerate() {
            if let Some(commit) = prepared.as_ref().filter(|_| sinks.contains(&i)) {
                if let Err(e) = sink.rollback(commit) {
                    tracing::warn!(task = %task.id, %commit, error = %e, "rollback failed; the next owner of the task resolves it");
                }
            }
            sink.discard();
        }
    }

    /// Resolves what earlier owners of task `id` left prepared, before it processes input,
    /// and learns the task's last commit sequence. True once done.
    pub(super) fn recover_external<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        id: TaskId,
    ) -> Result<(), RuntimeError> {
        let resolved = self.resolve_external(consumer, &[id])?;
        if let Some(external) = self.tasks.get_mut(&id).and_then(|t| t.external.as_mut()) {
            external.committed = resolved.first().map_or(0, |(_, seq)| *seq);
            external.recovered = true;
        }
        Ok(())
    }

    /// The periodic pass: resolves zombies' leftovers for the running tasks and measures the
    /// oldest prepared transaction's age.
    pub(crate) fn resolve_external_if_due<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<(), RuntimeError> {
        let ids: Vec<TaskId> = self
            .tasks
            .values()
            .filter(|t| t.external.as_ref().is_some_and(|e| e.recovered))
            .map(|t| t.id)
            .collect();
        if ids.is_empty()
            || !self
                .cadence
                .run_if_due(Duty::ExternalResolve, RESOLVE_INTERVAL)
        {
            return Ok(());
        }
        self.resolve_external(consumer, &ids)?;
        let application = self.shared.config.application.id.clone();
        let mut oldest: Option<Duration> = None;
        if let Some(task) = ids.first().and_then(|id| self.tasks.get_mut(id)) {
            for sink in task.graph.two_phase_sinks() {
                match sink.oldest_prepared_age(&application) {
                    Ok(age) => oldest = oldest.max(age),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the oldest prepared transaction's age")
                    }
                }
            }
        }
        self.shared.metrics.set_external_oldest_prepared(oldest);
        Ok(())
    }

    /// One resolution pass over tasks `ids` (see the module doc); returns each task's
    /// committed sequence as the lookup read it.
    fn resolve_external<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        ids: &[TaskId],
    ) -> Result<Vec<(TaskId, u64)>, RuntimeError> {
        let before = self.list_prepared(ids)?;
        let marks = self.stable_marks(consumer, ids)?;
        let after = self.list_prepared(ids)?;
        let mut sequences = Vec::new();
        for (id, mark) in marks {
            sequences.push((id, mark.as_ref().map_or(0, |m| m.sequence)));
            let Some(task) = self.tasks.get_mut(&id) else {
                continue;
            };
            let Some(me) = task.external.as_ref().map(|e| e.owner.clone()) else {
                continue;
            };
            for (sink_index, sink) in task.graph.two_phase_sinks().enumerate() {
                let listed: &[CommitId] = after.get(&(id, sink_index)).map_or(&[], Vec::as_slice);
                let earlier: HashSet<&CommitId> = before
                    .get(&(id, sink_index))
                    .map(|l| l.iter().collect())
                    .unwrap_or_default();
                for commit in listed {
                    let decision = decide(commit, mark.as_ref(), earlier.contains(commit), &me);
                    let result = match decision {
                        Decision::Leave => continue,
                        Decision::Commit => sink.commit(commit),
                        Decision::RollBack => sink.rollback(commit),
                    };
                    match result.map_err(|source| RuntimeError::Sink { task: id, source })? {
                        Resolved::Done => {
                            self.shared
                                .metrics
                                .add_external_resolved(decision == Decision::Commit);
                            tracing::info!(task = %id, sink = sink.name(), %commit, ?decision, "resolved a prepared transaction left behind");
                        }
                        Resolved::Missing => {
                            tracing::info!(task = %id, sink = sink.name(), %commit, "a prepared transaction left behind was resolved meanwhile");
                        }
                    }
                }
            }
        }
        Ok(sequences)
    }

    /// The prepared transactions of each sink of tasks `ids`, by (task, sink index).
    fn list_prepared(
        &mut self,
        ids: &[TaskId],
    ) -> Result<std::collections::HashMap<(TaskId, usize), Vec<CommitId>>, RuntimeError> {
        let application = self.shared.config.application.id.clone();
        let mut out = std::collections::HashMap::new();
        for id in ids {
            let Some(task) = self.tasks.get_mut(id) else {
                continue;
            };
            for (i, sink) in task.graph.two_phase_sinks().enumerate() {
                let listed = sink
                    .prepared(&application, *id)
                    .map_err(|source| RuntimeError::Sink { task: *id, source })?;
                out.insert((*id, i), listed);
            }
        }
        Ok(out)
    }

    /// Each task's commit mark from a stable read of its committed offsets (waiting out a
    /// pending transaction until the transaction timeout).
    fn stable_marks<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        ids: &[TaskId],
    ) -> Result<Vec<(TaskId, Option<CommitMark>)>, RuntimeError> {
        let mut tpl = TopicPartitionList::new();
        for id in ids {
            if let Some(input) = self.tasks.get(id).and_then(|t| t.inputs.first()) {
                tpl.add_partition(&input.topic, id.partition);
            }
        }
        let mut attempts =
            Backoff::exponential(Duration::from_millis(50), Duration::from_millis(500))
                .start(self.shared.config.kafka.transaction_timeout * 2);
        loop {
            let failure = match consumer.committed_offsets(tpl.clone(), LOOKUP_TIMEOUT) {
                Ok(committed) => match committed.elements().iter().find_map(|e| e.error().err()) {
                    None => {
                        return Ok(ids
                            .iter()
                            .map(|id| {
                                let mark = self
                                    .tasks
                                    .get(id)
                                    .and_then(|t| t.inputs.first())
                                    .and_then(|i| committed.find_partition(&i.topic, id.partition))
                                    .and_then(|e| decode_mark(e.metadata()));
                                (*id, mark)
                            })
                            .collect())
                    }
                    // Typically UNSTABLE_OFFSET_COMMIT: a transaction holds the offsets.
                    Some(unstable) => unstable,
                },
                Err(e) => e,
            };
            tracing::debug!(error = %failure, "committed offsets not stable yet for the two-phase resolution");
            if !attempts.wait() {
                return Err(RuntimeError::Kafka {
                    what: "reading stable committed offsets to resolve prepared transactions"
                        .to_owned(),
                    source: failure,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::external_commits::ExternalCommits;

    fn commit(sequence: u64, owner: &str) -> CommitId {
        CommitId {
            application: "app".to_owned(),
            task: TaskId {
                sub_topology: 0,
                partition: 1,
            },
            sequence,
            owner: owner.to_owned(),
        }
    }

    fn mark(sequence: u64, owner: &str) -> CommitMark {
        CommitMark {
            sequence,
            owner: owner.to_owned(),
        }
    }

    #[test]
    fn what_the_committed_mark_names_is_committed() {
        let m = mark(7, "a");
        for listed_before in [true, false] {
            assert_eq!(
                decide(&commit(7, "a"), Some(&m), listed_before, "me"),
                Decision::Commit
            );
            assert_eq!(
                decide(&commit(3, "a"), Some(&m), listed_before, "me"),
                Decision::Commit
            );
        }
    }

    #[test]
    fn unnamed_transactions_roll_back_only_when_listed_before_the_lookup() {
        let m = mark(7, "a");
        // The mark's owner never reached sequence 8 in Kafka; "z" is a zombie or older owner.
        for unnamed in [commit(8, "a"), commit(7, "z"), commit(2, "z")] {
            assert_eq!(decide(&unnamed, Some(&m), true, "me"), Decision::RollBack);
            assert_eq!(
                decide(&unnamed, Some(&m), false, "me"),
                Decision::Leave,
                "it may be a newer owner's, in flight"
            );
        }
        assert_eq!(
            decide(&commit(1, "a"), None, true, "me"),
            Decision::RollBack,
            "nothing committed yet"
        );
    }

    #[test]
    fn an_owner_never_resolves_its_own() {
        assert_eq!(
            decide(&commit(8, "me"), Some(&mark(7, "a")), true, "me"),
            Decision::Leave
        );
    }

    #[test]
    fn owners_are_fresh_per_start_and_the_mark_counts_on() {
        let a = ExternalCommits::starting();
        let b = ExternalCommits::starting();
        assert_ne!(a.owner, b.owner);
        assert_eq!(a.owner.len(), 16);
        let mut c = a.clone();
        c.committed = 41;
        assert_eq!(c.next_mark(), mark(42, &a.owner));
    }
}
