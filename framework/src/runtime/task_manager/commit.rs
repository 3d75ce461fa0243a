//! The commit protocol of a stream thread: begin, then prepare → commit → post-commit, and the
//! abort that every failure takes.
//!
//! ```text
//!  begin ──► process / punctuate: outputs sent, state changes held per task
//!                  │
//!  prepare ────────┤ every task's pending changes sent as changelog records;
//!                  │ its next input offset (or its last committed one) collected
//!  commit ─────────┤ exactly-once: offsets join the transaction, commit it
//!                  │ at-least-once: flush outputs, then commit offsets through the consumer
//!  post-commit ────┘ changelog positions from delivery reports; pending changes applied to
//!                    RocksDB with them; committed offsets noted; repartition purge;
//!                    checkpoint when due
//!  any failure ────► abort: the transaction, every task's pending changes, the consumer's
//!                    position (the thread starts over from the last commit)
//! ```
//!
//! Nothing is applied to RocksDB before the commit succeeded, so an abort only has to drop
//! what is pending; a crash at any point leaves state and offsets of the same commit.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

use super::{ExternalCommits, Halt, TaskManager};
use crate::kafka::{OutgoingRecord, OutputProducer, ProducerError};
use crate::runtime::cadence::Duty;
use crate::runtime::RuntimeError;
use crate::task::TaskId;
use crate::ErrorAction;

/// A step that ended without a fatal error: go on, or stop here because the thread starts
/// over (the reason is recorded and the transaction aborted).
type Step<T = ()> = Result<ControlFlow<(), T>, RuntimeError>;

/// What a commit carries, gathered by [`TaskManager::prepare`].
struct Prepared {
    /// Next input offset per task partition.
    offsets: TopicPartitionList,
    /// Changelog records sent.
    changes: usize,
    /// Changelog records a fault test holds back until the offsets joined the transaction.
    held: Vec<HeldRecord>,
    /// Tasks with two-phase sinks whose offsets carry this commit's mark.
    marked: Vec<TaskId>,
}

/// A changelog record held back by `EDDY_FAULT=stop_after_offsets`.
struct HeldRecord {
    topic: String,
    partition: i32,
    key: Vec<u8>,
    value: Option<Vec<u8>>,
}

impl TaskManager {
    /// Opens a transaction unless one is open.
    pub(super) fn ensure_transaction(&mut self) -> Result<(), RuntimeError> {
        if self.producer.in_transaction() {
            return Ok(());
        }
        match self.producer.begin() {
            Ok(()) => Ok(()),
            Err(e) => self.producer_failed(e),
        }
    }

    /// True with a transaction open when the commit interval has passed, or when the thread
    /// has caught up with its input (the last poll found nothing, no record waits in a
    /// task's buffer) and the minimum gap since the last commit has passed: a record's result
    /// becomes visible a transaction round trip after it arrives at low and moderate rates,
    /// while under a backlog the poll always finds records and the interval batches them.
    /// At-least-once outputs are visible as soon as they are written, so there the interval
    /// alone decides.
    pub(crate) fn commit_due(&self) -> bool {
        if !self.producer.in_transaction() {
            return false;
        }
        let processing = &self.shared.config.processing;
        let eager = self.eager_commits()
            && self.caught_up
            && !self.has_buffered()
            && self.cadence.is_due(Duty::Commit, processing.commit_min_gap);
        eager
            || self
                .cadence
                .is_due(Duty::Commit, processing.commit_interval)
    }

    /// True when commits may come before the interval: exactly-once with a minimum gap
    /// set (non-zero) and below the interval.
    pub(super) fn eager_commits(&self) -> bool {
        let processing = &self.shared.config.processing;
        self.producer.is_transactional()
            && !processing.commit_min_gap.is_zero()
            && processing.commit_min_gap < processing.commit_interval
    }

    /// Commits what is open: see the module's diagram.
    pub(crate) fn commit<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<(), RuntimeError> {
        // The interval runs from the end of a commit, so a slow commit still leaves a full
        // interval of processing before the next one.
        let started = Instant::now();
        let open = self.producer.in_transaction();
        let span = if open {
            tracing::info_span!(
                "commit",
                commit = self.commits + 1,
                tasks = self.tasks.len()
            )
        } else {
            tracing::Span::none()
        };
        let result = span.in_scope(|| self.commit_now(consumer));
        self.cadence.ran(Duty::Commit);
        if open && result.is_ok() && self.halt.is_none() {
            self.shared.metrics.commit.observe(started.elapsed());
        }
        result
    }

    fn commit_now<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<(), RuntimeError> {
        if !self.producer.in_transaction() || self.halt.is_some() {
            return Ok(());
        }
        let started = Instant::now();
        let ControlFlow::Continue(prepared) = self.prepare()? else {
            return Ok(());
        };
        if self.commit_prepared(consumer, &prepared)?.is_break() {
            return Ok(());
        }
        if tracing::enabled!(tracing::Level::DEBUG) {
            tracing::debug!(commit = self.commits, took = ?started.elapsed(), offsets = %describe_offsets(&prepared.offsets), changes = prepared.changes, "committed");
        }
        self.post_commit(&prepared)
    }

    /// Sends the state changes task `id` has made so far when the open transaction carries
    /// none of its changelog records yet; they are sent again, with the rest, at commit.
    ///
    /// A partition joins a transaction when its first record is sent: the brokers register
    /// it (AddPartitionsToTxn, and the partition leader's check with the coordinator) before
    /// they take the record. Changelog records sent only at commit made every commit wait
    /// for that registration (11–30 ms in wordcount at 1,000 lines/s). Sending the first
    /// changes at once overlaps it with processing; a key written twice in one transaction
    /// is restored to its last value either way.
    pub(super) fn register_changelogs(&mut self, id: TaskId) -> Result<(), RuntimeError> {
        if !self.producer.is_transactional()
            || !self.producer.in_transaction()
            || self.halt.is_some()
            || self.fault.holds_changelog(self.state_commits + 1)
        {
            return Ok(());
        }
        let Some(task) = self
            .tasks
            .get_mut(&id)
            .filter(|t| !t.changelogs_in_transaction)
        else {
            return Ok(());
        };
        let mut failed = None;
        for (topic, key, value) in task.graph.stores_mut().pending_changelog() {
            task.changelogs_in_transaction = true;
            if let Err(e) = send_changelog(&mut self.producer, topic, id.partition, key, value, &[])
            {
                failed = Some(e);
                break;
            }
        }
        match failed {
            Some(e) => self.producer_failed(e),
            None => Ok(()),
        }
    }

    /// Prepare: sends every task's pending state changes as changelog records and collects
    /// the input offsets to commit.
    fn prepare(&mut self) -> Step<Prepared> {
        let mut prepared = Prepared {
            offsets: TopicPartitionList::new(),
            changes: 0,
            held: Vec::new(),
            marked: Vec::new(),
        };
        self.producer.set_origin(None);
        let hold = self.fault.holds_changelog(self.state_commits + 1);
        let lose = self.fault.loses_state_offsets(self.state_commits + 1);
        let exactly_once = self.producer.is_transactional();
        for task in self.tasks.values_mut() {
            let partition = task.id.partition;
            // The last record per changelog carries the input offsets this transaction
            // commits for the task: a restore learns how far the state it replays goes.
            // Only a transaction ties them together: at-least-once, a changelog record can
            // arrive while outputs of its batch did not.
            let headers: Vec<(String, Vec<u8>)> = if exactly_once && task.phase.is_running() {
                let inputs = task
                    .inputs
                    .iter()
                    .filter_map(|i| Some((i.topic.as_str(), i.offset_to_commit()?)));
                vec![(
                    crate::runtime::state_position::HEADER.to_owned(),
                    crate::runtime::state_position::encode(inputs),
                )]
            } else {
                Vec::new()
            };
            let pending = task.graph.stores_mut().pending_changelog();
            let changed = !pending.is_empty();
            let last: std::collections::HashMap<&str, usize> = pending
                .iter()
                .enumerate()
                .map(|(i, (topic, _, _))| (*topic, i))
                .collect();
            for (i, (topic, key, value)) in pending.into_iter().enumerate() {
                prepared.changes += 1;
                if hold {
                    prepared.held.push(HeldRecord {
                        topic: topic.to_owned(),
                        partition,
                        key: key.to_vec(),
                        value: value.map(<[u8]>::to_vec),
                    });
                    continue;
                }
                let headers = if last.get(topic) == Some(&i) {
                    headers.as_slice()
                } else {
                    &[]
                };
                let sent =
                    send_changelog(&mut self.producer, topic, partition, key, value, headers);
                if let Err(e) = sent {
                    return self.on_producer_error(e);
                }
            }
            // A task that does not run yet (settling, restoring) commits nothing: its offset
            // is the one it looked up, and its metadata may carry a previous owner's
            // two-phase mark, which its recovery reads once it has restored (a mark of this
            // owner there would roll back a transaction Kafka committed).
            if !task.phase.is_running() || (changed && lose) {
                continue;
            }
            // A transaction without input of a task (punctuation output only) still carries
            // the task's committed offset: the group coordinator then refuses it from a
            // member that lost the task, as it refuses any other.
            // The task's stream time rides in the offset's metadata: committed with it.
            // Tasks with two-phase sinks name the commit in it too (see `external`).
            let mark = task.external.as_ref().map(ExternalCommits::next_mark);
            for input in &task.inputs {
                if let Some(next) = input.offset_to_commit() {
                    if mark.is_some() && prepared.marked.last() != Some(&task.id) {
                        prepared.marked.push(task.id);
                    }
                    crate::runtime::stream_time::add_offset(
                        &mut prepared.offsets,
                        &input.topic,
                        partition,
                        next,
                        task.graph.stream_time(),
                        mark.as_ref(),
                    )
                    .map_err(|source| RuntimeError::Kafka {
                        what: "building the offsets to commit".to_owned(),
                        source,
                    })?;
                }
            }
        }
        Ok(ControlFlow::Continue(prepared))
    }

    /// Commit: exactly-once puts the offsets into the transaction and commits it;
    /// at-least-once flushes the outputs and commits the offsets through the consumer.
    fn commit_prepared<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
        prepared: &Prepared,
    ) -> Step {
        let n = self.commits + 1;
        if self.fault.crashes_before_commit(n) {
            // Make the crash land after the outputs reached the brokers.
            let _ = self.producer.flush();
            self.fault.before_commit(n);
        }
        let offsets = &prepared.offsets;
        let mut group = None;
        if self.producer.is_transactional() && offsets.count() > 0 {
            match fenceable_group_metadata(consumer) {
                Ok(g) => group = Some(g),
                Err(why) => return self.on_error(RuntimeError::NotInGroup { why }),
            }
        }
        // The offsets join the transaction while its records are acknowledged, unless
        // something must happen between the two: held changelog records (a fault test) or
        // two-phase sinks, which prepare only once the offsets are in.
        let overlap = prepared.held.is_empty() && prepared.marked.is_empty();
        if !overlap {
            if let Some(group) = group.take() {
                if let Err(e) = self.producer.send_offsets(offsets, group) {
                    return self.on_producer_error(e);
                }
            }
        }
        if self.send_held(prepared)?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
        // Two-phase sinks prepare once the offsets are in the transaction: from here until
        // it ends, a stable offset lookup waits for it (see `external`).
        let external = match self.prepare_external(&prepared.marked) {
            Ok(n) => n > 0,
            Err(e) => return self.on_error(e),
        };
        if external {
            self.external_commits += 1;
            self.fault.after_prepare(self.external_commits);
        }
        let deadline = Instant::now() + self.shared.config.kafka.transaction_timeout;
        loop {
            // A retry (only ever of the commit itself) finds the offsets in the transaction.
            let committed = match group.take() {
                Some(group) => self.producer.commit_with_offsets(offsets, group),
                None => self.producer.commit(),
            };
            match committed {
                Ok(()) => break,
                Err(e) if e.action == ErrorAction::Retry && Instant::now() < deadline => {
                    tracing::warn!(error = %e, "retrying the commit");
                }
                Err(e) => return self.on_producer_error(e),
            }
        }
        if !self.producer.is_transactional() && offsets.count() > 0 {
            if let Err(source) = consumer.commit(offsets, CommitMode::Sync) {
                return self.on_error(RuntimeError::OffsetCommit { source });
            }
        }
        self.commits = n;
        if external {
            self.fault.before_external_commit(self.external_commits);
        }
        if prepared.changes > 0 {
            self.state_commits += 1;
            self.fault.after_commit(self.state_commits);
        }
        self.shared.metrics.add_commit();
        Ok(ControlFlow::Continue(()))
    }

    /// Sends the changelog records a fault test held back, after freezing the process.
    fn send_held(&mut self, prepared: &Prepared) -> Step {
        if prepared.held.is_empty() {
            return Ok(ControlFlow::Continue(()));
        }
        self.fault.stop_after_offsets(self.state_commits + 1);
        for r in &prepared.held {
            let sent = send_changelog(
                &mut self.producer,
                &r.topic,
                r.partition,
                &r.key,
                r.value.as_deref(),
                &[],
            );
            if let Err(e) = sent {
                return self.on_producer_error(e);
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Post-commit: applies each task's pending changes to RocksDB with the changelog
    /// positions the commit produced, notes the committed offsets, purges committed
    /// repartition records and checkpoints when due.
    fn post_commit(&mut self, prepared: &Prepared) -> Result<(), RuntimeError> {
        // Kafka committed: what the sinks prepared is theirs to commit now; a failure leaves
        // it prepared for the next owner of the task, which commits it.
        if let Err(e) = self.commit_external(&prepared.marked) {
            return self.on_error::<()>(e).map(|_| ());
        }
        for e in prepared.offsets.elements() {
            if let (true, Offset::Offset(next)) =
                (self.shared.plan.repartition.contains(e.topic()), e.offset())
            {
                self.purger.committed(e.topic(), e.partition(), next);
            }
        }
        self.purger.step(&self.shared.config.kafka);
        let delivered = self.producer.take_delivered_offsets();
        for task in self.tasks.values_mut() {
            let partition = task.id.partition;
            let positions: BTreeMap<String, i64> = task
                .graph
                .stores_mut()
                .changelogged()
                .into_iter()
                .filter_map(|(store, topic)| {
                    let last = delivered.get(&topic)?.get(&partition)?;
                    Some((store, last + 1))
                })
                .collect();
            if !positions.is_empty() {
                tracing::debug!(task = %task.id, ?positions, "changelog positions committed");
            }
            task.graph
                .stores_mut()
                .apply_committed(&positions)
                .map_err(|e| RuntimeError::Task {
                    task: task.id,
                    source: e.into(),
                })?;
            for input in &mut task.inputs {
                if let Some(next) = input.next_offset.take() {
                    input.committed_offset = Some(next);
                }
            }
            task.changelogs_in_transaction = false;
        }
        self.maybe_checkpoint()
    }

    /// What an error of the commit protocol does to the generation, decided here for the
    /// producer's, the two-phase sinks' and the at-least-once offset commit's errors alike, by
    /// [`RuntimeError::action`]:
    /// - fatal: `Err`, which ends the generation; the loop then aborts what is open
    ///   ([`abandon`](Self::abandon)) and the thread stops;
    /// - the transaction's offsets refused because the group generation moved on (a
    ///   rebalance of the classic protocol): abort, and the tasks restart from the last
    ///   commit on the same consumer and producer ([`rewind`](Self::rewind));
    /// - retry, abort or rejoin (fencing): abort now ([`reset_dirty`](Self::reset_dirty)) and
    ///   `Break`: the thread starts over from the last commit. A producer error turns fatal
    ///   after all when the delivery reports the abort served show a record the brokers
    ///   refused for good (every retry would meet it again).
    fn on_error<T>(&mut self, e: RuntimeError) -> Step<T> {
        if let RuntimeError::Producer(p) = &e {
            self.producer_fenced |= p.is_producer_fenced();
        }
        if e.action() == ErrorAction::Fatal {
            return Err(self.named_rejection(e));
        }
        let refused = matches!(&e, RuntimeError::Producer(p) if p.is_generation_refused());
        if !(refused && self.rewind(&e.to_string())) {
            self.reset_dirty(&e.to_string());
        }
        if let RuntimeError::Producer(mut p) = e {
            if let Some(rejected) = self.producer.take_rejected() {
                p.action = ErrorAction::Fatal;
                p.rejected = Some(rejected);
                return Err(self.named_rejection(RuntimeError::Producer(p)));
            }
        }
        Ok(ControlFlow::Break(()))
    }

    /// [`on_error`](Self::on_error) for a producer error.
    pub(super) fn on_producer_error<T>(&mut self, e: ProducerError) -> Step<T> {
        self.on_error(RuntimeError::Producer(e))
    }

    /// [`on_producer_error`](Self::on_producer_error) for callers that only need to know
    /// whether the error was fatal (a start-over is recorded in `halt`).
    pub(super) fn producer_failed(&mut self, e: ProducerError) -> Result<(), RuntimeError> {
        self.on_producer_error::<()>(e).map(|_| ())
    }

    /// The fatal error `e`; for a producer's refused record too large for its topic, with the
    /// limit it exceeded read from the topic, so the operator sees which setting to raise.
    fn named_rejection(&self, e: RuntimeError) -> RuntimeError {
        let RuntimeError::Producer(mut e) = e else {
            return e;
        };
        if let Some(rejected) = e.rejected.as_mut().filter(|r| r.is_too_large()) {
            rejected.limit = crate::kafka::TopicAdmin::new(&self.shared.config.kafka)
                .and_then(|admin| admin.topic_config(&rejected.topic, "max.message.bytes"))
                .unwrap_or_else(|lookup| {
                    tracing::warn!(error = %lookup, "cannot read the topic's max.message.bytes");
                    None
                });
        }
        RuntimeError::Producer(e)
    }

    /// Abort: aborts the open transaction, drops every task without applying its state, and
    /// marks the thread for a restart from the last commit.
    pub(crate) fn reset_dirty(&mut self, reason: &str) {
        if self.halt.is_none() {
            tracing::warn!(
                thread = self.thread,
                reason,
                "aborting and rejoining from the last commit"
            );
            self.halt = Some(Halt::StartOver(reason.to_owned()));
        }
        if self.producer.in_transaction() {
            self.shared.metrics.add_abort();
            if let Err(e) = self.producer.abort() {
                tracing::warn!(error = %e, "abort failed; the new producer fences this one");
            }
        }
        self.drop_all_dirty();
    }

    /// Drops every task, discarding its pending state changes.
    pub(super) fn drop_all_dirty(&mut self) {
        let tasks = std::mem::take(&mut self.tasks);
        let ids: Vec<TaskId> = tasks.keys().copied().collect();
        self.shared.status.remove_readers(&ids);
        self.shared.standbys.active_closed(&ids);
        for (_, mut task) in tasks {
            Self::abort_external(&mut task);
            task.graph.stores_mut().discard_pending();
        }
        let _ = self.restorer.forget(&ids);
    }
}

/// The group metadata to commit offsets with, checked as librdkafka holds it just before and
/// just after it is taken (a reset between the two shows as a change): refused when the
/// coordinator could not fence a commit made with it (see `kafka::membership`). A change
/// to another fenceable generation is read again, a few times.
fn fenceable_group_metadata<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
) -> Result<rdkafka::consumer::ConsumerGroupMetadata, String> {
    let mut refusal = crate::kafka::Refusal::Changed;
    for _ in 0..3 {
        let before = crate::kafka::membership(consumer);
        let group = consumer.group_metadata();
        match crate::kafka::not_fenceable(consumer, before.as_ref()) {
            None => return group.ok_or_else(|| "it holds no group metadata".to_owned()),
            Some(crate::kafka::Refusal::Changed) => {}
            Some(other) => {
                refusal = other;
                break;
            }
        }
    }
    Err(refusal.to_string())
}

/// `topic[partition]=offset, …` for the debug log of a commit.
fn describe_offsets(offsets: &TopicPartitionList) -> String {
    let parts: Vec<String> = offsets
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => format!("{}[{}]={o}", e.topic(), e.partition()),
            other => format!("{}[{}]={other:?}", e.topic(), e.partition()),
        })
        .collect();
    parts.join(", ")
}

/// Sends one changelog record of a task's partition (no timestamp, no headers).
pub(super) fn send_changelog(
    producer: &mut OutputProducer,
    topic: &str,
    partition: i32,
    key: &[u8],
    value: Option<&[u8]>,
    headers: &[(String, Vec<u8>)],
) -> Result<(), ProducerError> {
    producer.send(OutgoingRecord {
        topic,
        partition: Some(partition),
        key: Some(key),
        value,
        timestamp: None,
        headers,
    })
}
