//! A task owned by a stream thread: its processor graph, its phase (see
//! [`task_phase`](super::task_phase)) and its input partitions with their positions.

use std::time::Instant;

use super::task_phase::TaskPhase;
use crate::record::RawRecord;
use crate::shared::{StateSource, StoreReplay};
use crate::task::{TaskGraph, TaskId};

/// One input partition of a task (partition N of one of its sub-topology's source topics).
#[derive(Debug, Clone)]
pub(crate) struct TaskInput {
    /// The source topic (resolved).
    pub topic: String,
    /// The same, shared by the origins of the records it sends.
    pub origin: std::sync::Arc<str>,
    /// True while this member holds the partition: a task starts only once it holds all.
    pub assigned: bool,
    /// True when the topic is read as a table.
    pub table: bool,
    /// True while the input stays paused until the task's table inputs are loaded.
    pub held: bool,
    /// For a table input being loaded first: the end offset to reach, once read.
    pub load_target: Option<i64>,
    /// Records read but not processed yet, with their event times (tasks with several
    /// inputs only: they take records in timestamp order across inputs).
    pub buffer: std::collections::VecDeque<(i64, RawRecord)>,
    /// Since when the input has had nothing buffered while its partition had more.
    pub starved_since: Option<Instant>,
    /// True while the input is paused because its buffer is full.
    pub paused_full: bool,
    /// The committed offset input resumes at, once its task's phase knows it (`None` before,
    /// or when nothing was committed yet).
    pub start: Option<i64>,
    /// True once the consumer was asked to move up to where the input resumes; cleared by
    /// the next record taken.
    pub seek_requested: bool,
    /// The offset after the last record this task took from the consumer (processed or
    /// buffered): a record below it would be taken twice.
    pub taken_to: Option<i64>,
    /// Next input offset to commit, when records were consumed since the last commit.
    pub next_offset: Option<i64>,
    /// The input offset the group last committed, as far as this thread knows (the settled
    /// start, then each commit's): sent with transactions that carry no input of the task,
    /// so a member that lost the task cannot commit them.
    pub committed_offset: Option<i64>,
    /// True when the consumer may stand past where the input resumes: its task replaced one
    /// that consumed from it and was rewound in place, so the move back must succeed.
    pub position_ahead: bool,
    /// The highest next offset of this input that the changelog records replayed into the
    /// task's state carried ([`super::state_position`]): the state takes in every record
    /// below it.
    pub state_position: Option<i64>,
}

impl TaskInput {
    /// An input not yet settled, assigned or not.
    pub(crate) fn new(topic: String, assigned: bool, table: bool) -> Self {
        TaskInput {
            origin: std::sync::Arc::from(topic.as_str()),
            topic,
            assigned,
            table,
            held: false,
            load_target: None,
            buffer: std::collections::VecDeque::new(),
            starved_since: None,
            paused_full: false,
            start: None,
            seek_requested: false,
            taken_to: None,
            next_offset: None,
            committed_offset: None,
            position_ahead: false,
            state_position: None,
        }
    }

    /// For a record at `offset` this task must not take: below the settled start (processed
    /// and committed before), or below the end of what it took already (the consumer went
    /// back). Says where the input resumes, whether the consumer is still to be moved there
    /// (once until a record is taken again) and why. `None` when the record is taken; it
    /// then moves `taken_to` past it.
    pub(crate) fn repeated(&mut self, offset: i64) -> Option<Skip> {
        // `None` sorts below every offset: an input not settled, or with nothing committed,
        // has no floor from its start.
        let floor = self.start.max(self.taken_to);
        match floor {
            Some(resume) if offset < resume => {
                let seek = !self.seek_requested;
                self.seek_requested = true;
                Some(Skip {
                    resume,
                    seek,
                    went_back: self.taken_to.is_some_and(|to| offset < to),
                })
            }
            _ => {
                self.seek_requested = false;
                self.taken_to = Some(offset + 1);
                None
            }
        }
    }

    /// The offset of the next record to process: the first buffered one, if any.
    pub(crate) fn next_unprocessed(&self) -> Option<i64> {
        self.buffer.front().map(|(_, r)| r.offset)
    }

    /// The offset to commit for this input: what was consumed since the last commit, else
    /// the last committed one.
    pub(crate) fn offset_to_commit(&self) -> Option<i64> {
        self.next_offset.or(self.committed_offset)
    }
}

/// A record an input must not take ([`TaskInput::repeated`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Skip {
    /// Where the input resumes.
    pub resume: i64,
    /// True when the consumer is still to be moved there.
    pub seek: bool,
    /// True when the task took the record already (the consumer went back), false when it
    /// lies below the settled start.
    pub went_back: bool,
}

/// A task owned by this stream thread.
pub(crate) struct ActiveTask {
    /// The task.
    pub id: TaskId,
    /// Its input partitions, one per source topic of its sub-topology (partition
    /// `id.partition` of each).
    pub inputs: Vec<TaskInput>,
    /// The instantiated processors and stores.
    pub graph: TaskGraph,
    /// Where it is in its life, with what that phase knows.
    pub phase: TaskPhase,
    /// Where its stores' starting state came from.
    pub state_source: StateSource,
    /// Each changelogged store's replay, once planned.
    pub replays: Vec<StoreReplay>,
    /// When the task was created (how long it has been restoring, for progress logs).
    pub created: Instant,
    /// Its span: open from creation to close, entered while it processes a record.
    pub span: tracing::Span,
    /// Its commits as its two-phase sinks see them; `None` when it has none.
    pub external: Option<super::external_commits::ExternalCommits>,
    /// True once the open transaction carries changelog records of this task (its first
    /// state changes are sent as they happen, so its changelog partitions join early).
    pub changelogs_in_transaction: bool,
}

impl ActiveTask {
    /// The input reading `topic`.
    pub(crate) fn input_mut(&mut self, topic: &str) -> Option<&mut TaskInput> {
        self.inputs.iter_mut().find(|i| i.topic == topic)
    }

    /// Buffers a record of one of the task's inputs with its event time (the record's
    /// timestamp when its source cannot decode it: processing reports that).
    pub(crate) fn buffer(&mut self, raw: RawRecord) {
        let at = self.graph.event_time(&raw).unwrap_or(raw.timestamp);
        if let Some(input) = self.input_mut(&raw.topic) {
            input.buffer.push_back((at, raw));
        }
    }

    /// True when the task reads several topics: it buffers and merges their records.
    pub(crate) fn merges_inputs(&self) -> bool {
        self.inputs.len() > 1
    }

    /// True while the running task holds inputs back for its tables to load.
    pub(crate) fn holds_inputs(&self) -> bool {
        self.phase.is_running() && self.inputs.iter().any(|i| i.held)
    }

    /// True when this member holds every input partition of the task.
    pub(crate) fn fully_assigned(&self) -> bool {
        self.inputs.iter().all(|i| i.assigned)
    }

    /// Closes the task cleanly, in any phase, once what it did is committed: its state stays
    /// on disk for reuse. Taking the task by value is its closed phase.
    pub(crate) fn close(mut self) {
        self.graph.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skip(resume: i64, seek: bool, went_back: bool) -> Option<Skip> {
        Some(Skip {
            resume,
            seek,
            went_back,
        })
    }

    #[test]
    fn records_below_the_start_are_skipped_and_the_consumer_moved_once() {
        let mut input = TaskInput::new("t".to_owned(), true, false);
        input.start = Some(40);
        assert_eq!(input.repeated(3), skip(40, true, false));
        assert_eq!(input.repeated(4), skip(40, false, false));
        assert_eq!(input.repeated(40), None);
        let mut fresh = TaskInput::new("t".to_owned(), true, false);
        fresh.start = None;
        assert_eq!(
            fresh.repeated(0),
            None,
            "nothing committed: nothing to skip"
        );
    }

    #[test]
    fn a_consumer_that_goes_back_delivers_nothing_twice() {
        let mut input = TaskInput::new("t".to_owned(), true, false);
        input.start = Some(10);
        for offset in [10, 11, 14] {
            assert_eq!(input.repeated(offset), None, "offset {offset} is new");
        }
        // The consumer rewinds to 11 (an offset reset, a validation seek): 11 and 14 were
        // taken, so the input resumes at 15, with one seek.
        assert_eq!(input.repeated(11), skip(15, true, true));
        assert_eq!(input.repeated(14), skip(15, false, true));
        assert_eq!(input.repeated(15), None);
        // A second rewind asks for a seek again.
        assert_eq!(input.repeated(12), skip(16, true, true));
        // Gaps (transaction markers, aborted records) are not repeats.
        assert_eq!(input.repeated(30), None);
        assert_eq!(input.taken_to, Some(31));
    }
}
