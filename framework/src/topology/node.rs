//! Node definitions of a topology: how each source decodes, processor is made, sink encodes.

use std::sync::Arc;

use super::erased::{ErasedProcessor, ErasedRecord, TypeInfo};
use super::TopicRef;
use crate::serde::SerdeError;

/// Why a source could not turn a Kafka record into a typed record.
#[derive(Debug)]
pub(crate) enum DecodeError {
    /// The key or the value (`part`) cannot be decoded.
    Serde {
        /// `key` or `value`.
        part: &'static str,
        /// What was wrong.
        source: SerdeError,
    },
    /// The record's event time (its timestamp, or what the source's extractor made of it) is
    /// negative: missing or invalid.
    Timestamp(i64),
}

/// Decodes a Kafka key, value and timestamp into a record with its event time.
pub(crate) type Decoder = Arc<
    dyn Fn(Option<&[u8]>, Option<&[u8]>, i64) -> Result<ErasedRecord, DecodeError> + Send + Sync,
>;

/// A source's event time of a record from its key, value and Kafka timestamp.
pub type TimestampExtractor<K, V> = Arc<dyn Fn(&K, &V, i64) -> i64 + Send + Sync>;

/// Encodes an erased record's key and value for Kafka.
pub(crate) type Encoder = Arc<
    dyn Fn(&ErasedRecord) -> Result<(Option<Vec<u8>>, Option<Vec<u8>>), SerdeError> + Send + Sync,
>;

/// Chooses the partition of an encoded record from its key bytes and the partition count.
pub type PartitionerFn = Arc<dyn Fn(Option<&[u8]>, i32) -> i32 + Send + Sync>;

/// Makes a fresh processor for each task.
pub(crate) type Supplier = Arc<dyn Fn() -> Box<dyn ErasedProcessor> + Send + Sync>;

pub(crate) enum NodeKind {
    Source {
        topic: TopicRef,
        decode: Decoder,
    },
    Processor {
        supplier: Supplier,
    },
    Sink {
        topic: TopicRef,
        encode: Encoder,
        partitioner: Option<PartitionerFn>,
    },
}

pub(crate) struct NodeDef {
    pub name: String,
    pub kind: NodeKind,
    pub parents: Vec<String>,
    /// Key and value types the node accepts (`None` for sources).
    pub input: Option<(TypeInfo, TypeInfo)>,
    /// Key and value types the node forwards (`None` for sinks).
    pub output: Option<(TypeInfo, TypeInfo)>,
    pub stores: Vec<String>,
    /// A side output of its parent: reached only by forwards that name it, and not held to
    /// the parent's output types (late records of a windowed aggregation, for example).
    pub side_output: bool,
}
