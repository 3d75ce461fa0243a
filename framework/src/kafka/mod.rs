//! Kafka clients configured for exactly-once processing, and error classification.

mod admin;
mod bounded;
mod classify;
mod delivery;
mod drain;
mod group;
mod group_describe;
mod membership;
mod output_producer;
mod partitioner;
mod settings;
mod watermarks;

pub use admin::{TopicAdmin, TopicAdminError, TopicSpec};
pub(crate) use classify::{classify, is_report};
pub(crate) use delivery::{is_deterministic, RecordOrigin};
pub(crate) use drain::Drainer;
pub(crate) use group::{describe_group, GroupView};
pub use membership::{membership, not_fenceable, Membership, Refusal};
pub use output_producer::{OutgoingRecord, OutputProducer, ProducerError};
pub(crate) use partitioner::murmur2_partition;
pub use settings::KafkaSettings;
pub(crate) use watermarks::{client_watermarks, offset_in, watermarks};

/// The Kafka client error type (re-exported from rdkafka).
pub use rdkafka::error::KafkaError;
