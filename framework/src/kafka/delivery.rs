//! Delivery reports of a stream thread's producer: acknowledged offsets, failures, and the
//! records the brokers refuse for good, traced back to the input record that produced them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::{ClientContext, Message};

/// Highest acknowledged offset per topic and partition.
pub type DeliveredOffsets = HashMap<String, HashMap<i32, i64>>;

/// The input record an output was produced for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordOrigin {
    /// Input topic.
    pub topic: Arc<str>,
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
}

impl std::fmt::Display for RecordOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} [{}] offset {}",
            self.topic, self.partition, self.offset
        )
    }
}

/// A record the brokers (or librdkafka's own checks) refuse whatever the number of tries: too
/// large for the topic, invalid, or for a topic that does not exist or may not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRecord {
    /// The topic it was for.
    pub topic: String,
    /// Its size in bytes (key plus value).
    pub bytes: usize,
    /// Why it was refused.
    pub code: RDKafkaErrorCode,
    /// The input record it came from; `None` for changelog records, which a commit writes.
    pub origin: Option<RecordOrigin>,
    /// The topic's `max.message.bytes`, when it was too large and the limit could be read.
    pub limit: Option<String>,
}

impl RejectedRecord {
    /// True when it was refused for its size.
    pub fn is_too_large(&self) -> bool {
        is_too_large(self.code)
    }
}

impl std::fmt::Display for RejectedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "a record of {} bytes for topic `{}` was refused ({})",
            self.bytes, self.topic, self.code
        )?;
        if matches!(
            self.code,
            RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition
        ) {
            f.write_str(
                ": the topic does not exist (deleted while the app ran, or never created)",
            )?;
        }
        if is_too_large(self.code) {
            match &self.limit {
                Some(limit) => write!(
                    f,
                    ": it exceeds the topic's max.message.bytes ({limit}) or the producer's message.max.bytes"
                )?,
                None => f.write_str(
                    ": it exceeds the topic's max.message.bytes or the producer's message.max.bytes",
                )?,
            }
        }
        match &self.origin {
            Some(origin) => write!(f, "; it came from the input record at {origin}"),
            None => f.write_str("; it is a changelog record of the commit"),
        }
    }
}

/// True for produce errors that every retry meets again.
///
/// A send to a partition at or beyond the count librdkafka knows (a sink partitioner's answer
/// out of range) fails with `UnknownPartition`: partitions are only ever added, and Eddy
/// reads the counts it partitions by before its producers first see the topic, so no retry
/// finds that partition. (Elsewhere the code means metadata not yet seen: see `classify`.)
pub fn is_deterministic(code: RDKafkaErrorCode) -> bool {
    is_too_large(code)
        || matches!(
            code,
            RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidTopic
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::PolicyViolation
        )
}

fn is_too_large(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
    )
}

/// Delivery outcome counters shared with the producer's callback.
#[derive(Debug, Default)]
pub(super) struct DeliveryStats {
    pub(super) delivered: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) first_failure: Mutex<Option<String>>,
    /// The largest record refused for good since the transaction began (a broker refuses a
    /// whole batch for one record too large), with its origin's opaque (see
    /// [`DeliveryContext`]).
    pub(super) worst_rejection: Mutex<Option<(RejectedRecord, usize)>>,
    /// The first record since the transaction began that failed because the brokers did not
    /// know its topic, with its origin's opaque: a rejection only once the brokers confirm
    /// the topic is missing (a topic whose metadata is still spreading gets the same answer).
    pub(super) unknown_topic: Mutex<Option<(RejectedRecord, usize)>>,
    /// Highest acknowledged offset per topic partition since the last take.
    pub(super) offsets: Mutex<DeliveredOffsets>,
}

/// Records delivery outcomes; a failed delivery makes the transaction abortable in librdkafka,
/// and the first failure is kept so the commit error can name it. Each record's opaque is the
/// index of its origin plus one (0: none), which the producer turns back into the origin.
#[derive(Debug, Default)]
pub(super) struct DeliveryContext {
    pub(super) stats: Arc<DeliveryStats>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, origin: usize) {
        match result {
            Ok(msg) => {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut offsets) = self.stats.offsets.lock() {
                    let partitions = match offsets.get_mut(msg.topic()) {
                        Some(p) => p,
                        None => offsets.entry(msg.topic().to_owned()).or_default(),
                    };
                    let max = partitions.entry(msg.partition()).or_insert(msg.offset());
                    *max = (*max).max(msg.offset());
                }
            }
            Err((
                KafkaError::MessageProduction(
                    RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight,
                ),
                _,
            )) => {
                // Purged on purpose by an abort: not a delivery failure.
            }
            Err((err, msg)) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                let text = format!(
                    "delivery to {} [{}] failed: {err}",
                    msg.topic(),
                    msg.partition()
                );
                tracing::warn!("{text}");
                if let Ok(mut first) = self.stats.first_failure.lock() {
                    first.get_or_insert(text);
                }
                let Some(code) = err.rdkafka_error_code() else {
                    return;
                };
                let rejected = RejectedRecord {
                    topic: msg.topic().to_owned(),
                    bytes: msg.payload_len() + msg.key().map_or(0, <[u8]>::len),
                    code,
                    origin: None,
                    limit: None,
                };
                if is_deterministic(code) {
                    // The broker refuses a whole batch; its largest record is the culprit.
                    if let Ok(mut worst) = self.stats.worst_rejection.lock() {
                        if worst.as_ref().is_none_or(|(w, _)| w.bytes < rejected.bytes) {
                            *worst = Some((rejected, origin));
                        }
                    }
                } else if code == RDKafkaErrorCode::UnknownTopicOrPartition {
                    if let Ok(mut suspect) = self.stats.unknown_topic.lock() {
                        suspect.get_or_insert((rejected, origin));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_names_its_size_topic_limit_and_origin() {
        let rejected = RejectedRecord {
            topic: "out".to_owned(),
            bytes: 5_000,
            code: RDKafkaErrorCode::MessageSizeTooLarge,
            origin: Some(RecordOrigin {
                topic: Arc::from("in"),
                partition: 2,
                offset: 41,
            }),
            limit: Some("2000".to_owned()),
        };
        let text = rejected.to_string();
        for needle in [
            "5000 bytes",
            "`out`",
            "max.message.bytes",
            "in [2] offset 41",
        ] {
            assert!(text.contains(needle), "missing `{needle}` in {text}");
        }
        assert!(is_deterministic(RDKafkaErrorCode::MessageSizeTooLarge));
        assert!(!is_deterministic(RDKafkaErrorCode::NotLeaderForPartition));
        let missing = RejectedRecord {
            code: RDKafkaErrorCode::UnknownTopic,
            limit: None,
            ..rejected
        }
        .to_string();
        assert!(
            missing.contains("`out`") && missing.contains("does not exist"),
            "{missing}"
        );
        assert!(!missing.contains("max.message.bytes"), "{missing}");
    }

    /// What librdkafka answers a send to a topic it knows to be missing, to a partition the
    /// topic does not have, or with a record over a size limit, comes back on every retry:
    /// the thread must stop naming the record, not abort and reprocess it forever.
    #[test]
    fn unknown_topics_and_partitions_and_oversized_records_stop_the_thread() {
        use crate::kafka::classify;
        use crate::ErrorAction;
        for code in [
            RDKafkaErrorCode::UnknownTopic,
            RDKafkaErrorCode::UnknownPartition,
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::MessageBatchTooLarge,
            RDKafkaErrorCode::InvalidMessageSize,
        ] {
            assert!(is_deterministic(code), "{code:?}");
            let err = KafkaError::MessageProduction(code);
            assert_eq!(classify(&err), ErrorAction::Fatal, "{code:?}");
        }
        // The broker's answer while a new topic's metadata spreads or a leader moves: passes.
        assert!(!is_deterministic(RDKafkaErrorCode::UnknownTopicOrPartition));
        // An unknown partition outside a send (a watermark read of a topic created a moment
        // ago, a seek of a partition just revoked) is worth starting over for.
        let err = KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownPartition);
        assert_ne!(classify(&err), ErrorAction::Fatal);
    }
}
