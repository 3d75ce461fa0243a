//! The per-task state a processor context exposes: stores, forwards, metadata, time.

use std::time::Duration;

use crate::processor::{ProcessError, PunctuationType};
use crate::record::RecordMetadata;
use crate::state::{KeyValueStore, SessionStore, TaskStores, VersionedStore, WindowStore};
use crate::topology::erased::ErasedRecord;

/// What an operator counts for the metrics: late records and idle-time advances.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OperatorCounts {
    /// Records that came after their window closed.
    pub late: u64,
    /// Times the idle-input policy advanced the operator's time.
    pub idle_advances: u64,
}

pub(crate) struct ContextInner {
    pub stores: TaskStores,
    pub forwarded: Vec<(Option<String>, ErasedRecord)>,
    pub metadata: Option<RecordMetadata>,
    pub stream_time: i64,
    pub wall_clock: i64,
    pub partition: i32,
    pub current_node: usize,
    pub node_names: Vec<String>,
    pub node_stores: Vec<Vec<String>>,
    pub new_schedules: Vec<(Duration, PunctuationType)>,
    /// Counts per node since the runtime last took them.
    pub counts: Vec<OperatorCounts>,
}

impl ContextInner {
    pub(crate) fn current_node_name(&self) -> &str {
        self.node_names
            .get(self.current_node)
            .map(String::as_str)
            .unwrap_or("?")
    }

    pub(crate) fn forward(&mut self, child: Option<String>, record: ErasedRecord) {
        self.forwarded.push((child, record));
    }

    pub(crate) fn schedule(&mut self, interval: Duration, kind: PunctuationType) {
        self.new_schedules.push((interval, kind));
    }

    pub(crate) fn key_value_store<K: 'static, V: 'static>(
        &mut self,
        name: &str,
    ) -> Result<KeyValueStore<'_, K, V>, ProcessError> {
        self.check_connected(name)?;
        Ok(self.stores.typed(name)?)
    }

    pub(crate) fn window_store<K: 'static, V: 'static>(
        &mut self,
        name: &str,
    ) -> Result<WindowStore<'_, K, V>, ProcessError> {
        self.check_connected(name)?;
        Ok(self.stores.typed_window(name)?)
    }

    pub(crate) fn session_store<K: 'static, V: 'static>(
        &mut self,
        name: &str,
    ) -> Result<SessionStore<'_, K, V>, ProcessError> {
        self.check_connected(name)?;
        Ok(self.stores.typed_session(name)?)
    }

    pub(crate) fn versioned_store<K: 'static, V: 'static>(
        &mut self,
        name: &str,
    ) -> Result<VersionedStore<'_, K, V>, ProcessError> {
        self.check_connected(name)?;
        Ok(self.stores.typed_versioned(name)?)
    }

    fn check_connected(&self, name: &str) -> Result<(), ProcessError> {
        let connected = self
            .node_stores
            .get(self.current_node)
            .is_some_and(|stores| stores.iter().any(|s| s == name));
        if connected {
            Ok(())
        } else {
            Err(ProcessError::StoreNotConnected {
                processor: self.current_node_name().to_owned(),
                store: name.to_owned(),
            })
        }
    }

    /// The counts of the current node.
    pub(crate) fn counts(&mut self) -> &mut OperatorCounts {
        let node = self.current_node;
        if self.counts.len() <= node {
            self.counts.resize(node + 1, OperatorCounts::default());
        }
        &mut self.counts[node]
    }
}
