//! Kafka clients configured for exactly-once processing, and error classification.

mod admin;
mod bounded;
mod classify;
mod delivery;
mod drain;
mod group;
mod output_producer;
mod partitioner;
mod settings;
mod watermarks;

pub use admin::{TopicAdmin, TopicAdminError, TopicSpec};
pub use classify::{classify, is_report};
pub use delivery::{is_deterministic, DeliveredOffsets, RecordOrigin, RejectedRecord};
pub use drain::drain;
pub use group::{describe_group, GroupView, InstanceAssignment};
pub use output_producer::{OutgoingRecord, OutputProducer, ProducerError};
pub use partitioner::{murmur2, murmur2_partition};
pub use settings::KafkaSettings;
pub use watermarks::watermarks;

/// The Kafka client error type (re-exported from rdkafka).
pub use rdkafka::error::KafkaError;
