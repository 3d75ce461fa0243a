//! A task's stream time as committed with its input offsets: carried in the offset commit's
//! metadata, so a crash, a move to another instance or a savepoint restore resumes the stream
//! time that belongs to the offset, and a record is late or on time the same way before and
//! after.

use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

/// Adds `topic` [`partition`] at `next` to the offsets to commit, with `stream_time` (when
/// the task has one) in the entry's metadata.
pub(crate) fn add_offset(
    offsets: &mut TopicPartitionList,
    topic: &str,
    partition: i32,
    next: i64,
    stream_time: i64,
) -> KafkaResult<()> {
    let mut entry = offsets.add_partition(topic, partition);
    entry.set_offset(Offset::Offset(next))?;
    if let Some(metadata) = encode(stream_time) {
        entry.set_metadata(metadata);
    }
    Ok(())
}

/// Marks metadata written by this format (version 1), so other text is ignored.
const PREFIX: &str = "eddy1;st=";

/// The offset metadata for `stream_time`; `None` before the task saw any record.
pub(crate) fn encode(stream_time: i64) -> Option<String> {
    (stream_time >= 0).then(|| format!("{PREFIX}{stream_time}"))
}

/// The stream time in offset metadata `metadata`; `None` when it holds none (nothing
/// committed yet, an offset committed by another tool, or an older version of the app).
pub(crate) fn decode(metadata: &str) -> Option<i64> {
    metadata
        .strip_prefix(PREFIX)?
        .parse()
        .ok()
        .filter(|t: &i64| *t >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_time_round_trips_and_foreign_metadata_is_ignored() {
        assert_eq!(encode(i64::MIN), None, "no record seen yet");
        let written = encode(1_700_000_000_123).unwrap();
        assert_eq!(decode(&written), Some(1_700_000_000_123));
        for foreign in ["", "st=5", "eddy1;st=x", "eddy1;st=-4", "eddy2;st=5"] {
            assert_eq!(decode(foreign), None, "{foreign:?}");
        }
    }
}
