//! A task's commits as its two-phase sinks see them: its owner id, its commit sequence and
//! what its sinks prepared.

use crate::runtime::stream_time::CommitMark;
use crate::two_phase::CommitId;

/// A task's commits as its two-phase sinks see them.
#[derive(Debug, Clone)]
pub(crate) struct ExternalCommits {
    /// This owner's id, fresh at each task start.
    pub owner: String,
    /// The sequence of the task's last Kafka commit (0 before the first).
    pub committed: u64,
    /// True once what earlier owners left prepared was resolved at start.
    pub recovered: bool,
    /// The commit the sinks prepared in the open transaction.
    pub prepared: Option<CommitId>,
    /// Which sinks (by index in topology order) prepared it.
    pub prepared_sinks: Vec<usize>,
}

impl ExternalCommits {
    /// The state of a task that starts now.
    pub(crate) fn starting() -> Self {
        use std::hash::{BuildHasher, Hasher};
        // RandomState is seeded randomly per process and differs per instance.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        ExternalCommits {
            owner: format!("{random:016x}"),
            committed: 0,
            recovered: false,
            prepared: None,
            prepared_sinks: Vec::new(),
        }
    }

    /// The mark the next commit's offsets carry.
    pub(crate) fn next_mark(&self) -> CommitMark {
        CommitMark {
            sequence: self.committed + 1,
            owner: self.owner.clone(),
        }
    }
}
