//! Two-phase commit with a system outside Kafka: the interface a sink implements to prepare
//! its writes before a task's Kafka commit and make them visible after it, and the ids that
//! name its prepared work.
//!
//! The runtime drives a [`TwoPhaseSink`] through each commit of the task that holds it:
//!
//! ```text
//!  records ──► sink buffers its writes (outside any external transaction)
//!  commit:  changelogs sent, input offsets join the Kafka transaction
//!           ──► prepare(id)        the writes made durable, undecided (PREPARE TRANSACTION)
//!           Kafka commit           (the offsets carry id's sequence and owner)
//!           ──► commit(id)         the writes made visible (COMMIT PREPARED)
//!  abort:   ──► rollback(id) when prepared, discard() in any case
//!  start:   prepared() before and after a stable read of the committed offsets:
//!           what the committed offsets name is committed, the rest rolled back
//! ```
//!
//! A crash anywhere leaves a prepared transaction whose fate Kafka decided: the next owner
//! of the task (or the periodic pass of the current one) resolves it from the committed
//! offsets' metadata.

use std::fmt;
use std::time::Duration;

use crate::task::TaskId;

/// Names one commit of one task: what a sink names its prepared work by.
///
/// Its [`global_id`](Self::global_id) is `eddy:<application>:<task>:<sequence>:<owner>`,
/// at most [`CommitId::MAX_GLOBAL_ID`] bytes. `owner` is fresh each time a task starts
/// (librdkafka does not expose the producer epoch, so the owner stands in for it): two
/// owners of the same task, a live one and a zombie, never share an id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommitId {
    /// The app's `application.id`.
    pub application: String,
    /// The task whose commit this is.
    pub task: TaskId,
    /// The task's commit sequence: one more than the last commit its offsets carry.
    pub sequence: u64,
    /// The task's owner while it made this commit.
    pub owner: String,
}

impl CommitId {
    /// The longest global id PostgreSQL accepts for a prepared transaction (bytes).
    pub const MAX_GLOBAL_ID: usize = 199;

    /// The id as one string: `eddy:<application>:<task>:<sequence>:<owner>`.
    pub fn global_id(&self) -> String {
        format!(
            "{}{}:{}",
            Self::task_prefix(&self.application, self.task),
            self.sequence,
            self.owner
        )
    }

    /// The common start of every global id of `task` of `application` (for a prefix search).
    pub fn task_prefix(application: &str, task: TaskId) -> String {
        format!("eddy:{application}:{task}:")
    }

    /// The common start of every global id of `application`.
    pub fn application_prefix(application: &str) -> String {
        format!("eddy:{application}:")
    }

    /// Parses a global id written by [`global_id`](Self::global_id); `None` for any other
    /// text. The application id may itself contain `:`.
    pub fn parse(global_id: &str) -> Option<CommitId> {
        let rest = global_id.strip_prefix("eddy:")?;
        let mut parts = rest.rsplitn(4, ':');
        let owner = parts.next()?;
        let sequence = parts.next()?.parse().ok()?;
        let task = parts.next()?;
        let application = parts.next()?;
        let (sub_topology, partition) = task.split_once('_')?;
        if owner.is_empty() || application.is_empty() {
            return None;
        }
        Some(CommitId {
            application: application.to_owned(),
            task: TaskId {
                sub_topology: sub_topology.parse().ok()?,
                partition: partition.parse().ok()?,
            },
            sequence,
            owner: owner.to_owned(),
        })
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.global_id())
    }
}

/// What became of a prepared transaction asked to commit or roll back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolved {
    /// Done now.
    Done,
    /// No prepared transaction has that id (someone else resolved it, or it never existed).
    Missing,
}

/// A two-phase sink failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{sink}: {message}")]
pub struct SinkError {
    /// The sink's name.
    pub sink: String,
    /// What failed, with the external system's own message.
    pub message: String,
    /// True when trying again later can succeed (a connection lost, a lock timeout): the
    /// runtime aborts and starts over from the last commit. False stops the app.
    pub transient: bool,
}

impl SinkError {
    /// A failure that trying again can cure.
    pub fn transient(sink: impl Into<String>, message: impl Into<String>) -> Self {
        SinkError {
            sink: sink.into(),
            message: message.into(),
            transient: true,
        }
    }

    /// A failure that trying again cannot cure.
    pub fn fatal(sink: impl Into<String>, message: impl Into<String>) -> Self {
        SinkError {
            sink: sink.into(),
            message: message.into(),
            transient: false,
        }
    }
}

/// A sink that writes to a transactional system outside Kafka in step with the task's
/// commits; see the [module](self) for the order of calls.
///
/// A processor exposes its sink through
/// [`Processor::two_phase_sink`](crate::processor::Processor::two_phase_sink). All calls come
/// from the task's stream thread.
pub trait TwoPhaseSink: Send {
    /// The sink's name, for logs and errors.
    fn name(&self) -> &str;

    /// Makes what the sink buffered since the last commit durable but undecided, under
    /// `commit`'s global id. `Ok(false)` when nothing was buffered (nothing prepared).
    ///
    /// # Errors
    /// Any error aborts the Kafka transaction; the sink must have left nothing prepared or
    /// must roll it back in [`rollback`](Self::rollback).
    fn prepare(&mut self, commit: &CommitId) -> Result<bool, SinkError>;

    /// Makes the prepared transaction `commit` visible.
    ///
    /// # Errors
    /// A failure after the Kafka commit leaves the transaction prepared: the next start of
    /// the task commits it.
    fn commit(&mut self, commit: &CommitId) -> Result<Resolved, SinkError>;

    /// Rolls back the prepared transaction `commit`.
    ///
    /// # Errors
    /// A failure leaves it prepared for the next resolution pass.
    fn rollback(&mut self, commit: &CommitId) -> Result<Resolved, SinkError>;

    /// Drops what was buffered and not prepared (the Kafka transaction aborted).
    fn discard(&mut self);

    /// The prepared transactions of `task` of `application` left by any owner.
    ///
    /// # Errors
    /// When the external system cannot be asked.
    fn prepared(&mut self, application: &str, task: TaskId) -> Result<Vec<CommitId>, SinkError>;

    /// True when `commit` was made visible (asked when its prepared transaction is missing
    /// at [`commit`](Self::commit), to tell "someone else committed it" from "lost").
    ///
    /// # Errors
    /// When the external system cannot be asked.
    fn is_committed(&mut self, commit: &CommitId) -> Result<bool, SinkError>;

    /// How long the oldest prepared transaction of `application` has been waiting, if any
    /// (prepared transactions hold locks and hold back cleanup in the external system).
    ///
    /// # Errors
    /// When the external system cannot be asked.
    fn oldest_prepared_age(&mut self, application: &str) -> Result<Option<Duration>, SinkError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_round_trip_with_colons_in_the_application_id() {
        for application in ["orders", "team:orders:v2"] {
            let id = CommitId {
                application: application.to_owned(),
                task: TaskId {
                    sub_topology: 2,
                    partition: 11,
                },
                sequence: 42,
                owner: "9f3a".to_owned(),
            };
            let gid = id.global_id();
            assert_eq!(gid, format!("eddy:{application}:2_11:42:9f3a"));
            assert!(gid.starts_with(&CommitId::task_prefix(application, id.task)));
            assert_eq!(CommitId::parse(&gid), Some(id));
        }
        for foreign in [
            "",
            "eddy:",
            "eddy:a:1_2:x:o",
            "eddy:a:12:3:o",
            "xa:a:1_2:3:o",
            "eddy:a:1_2:3:",
        ] {
            assert_eq!(CommitId::parse(foreign), None, "{foreign:?}");
        }
    }
}
