//! Tables: per-key values with their update stream.

use super::KStream;
use crate::processor::Data;

/// A changelog stream of per-key values (the result of an aggregation).
pub struct KTable<K, V> {
    stream: KStream<K, V>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            stream: self.stream.clone(),
        }
    }
}

impl<K, V> KTable<K, V> {
    pub(super) fn new(stream: KStream<K, V>) -> Self {
        KTable { stream }
    }
}

impl<K, V> std::fmt::Debug for KTable<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KTable")
            .field("node", &self.stream.node)
            .finish()
    }
}

impl<K: Data, V: Data> KTable<K, V> {
    /// Every update of the table as a stream: one record per input record aggregated.
    pub fn to_stream(&self) -> KStream<K, V> {
        self.stream.clone()
    }
}
