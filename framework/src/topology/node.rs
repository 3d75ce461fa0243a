//! Node definitions of a topology: how each source decodes, processor is made, sink encodes.

use std::sync::Arc;

use super::erased::{ErasedProcessor, ErasedRecord, TypeInfo};
use super::TopicRef;
use crate::serde::SerdeError;

/// Decodes a Kafka key and value into a record's erased key and value.
pub(crate) type Decoder = Arc<
    dyn Fn(Option<&[u8]>, Option<&[u8]>, i64) -> Result<ErasedRecord, (&'static str, SerdeError)>
        + Send
        + Sync,
>;

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
}
