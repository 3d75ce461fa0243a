//! A task's stream time as committed with its input offsets: carried in the offset commit's
//! metadata, so a crash, a move to another instance or a savepoint restore resumes the stream
//! time that belongs to the offset, and a record is late or on time the same way before and
//! after.

use rdkafka::error::KafkaResult;
use rdkafka::{Offset, TopicPartitionList};

/// A task's last commit as its offsets name it, for tasks with two-phase sinks: the commit
/// sequence and the task's owner then (see [`crate::two_phase`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommitMark {
    /// The task's commit sequence.
    pub sequence: u64,
    /// The owner that made the commit.
    pub owner: String,
}

/// Adds `topic` [`partition`] at `next` to the offsets to commit, with `stream_time` (when
/// the task has one) and the commit's `mark` (when it has two-phase sinks) in the entry's
/// metadata.
pub(crate) fn add_offset(
    offsets: &mut TopicPartitionList,
    topic: &str,
    partition: i32,
    next: i64,
    stream_time: i64,
    mark: Option<&CommitMark>,
) -> KafkaResult<()> {
    let mut entry = offsets.add_partition(topic, partition);
    entry.set_offset(Offset::Offset(next))?;
    if let Some(metadata) = encode(stream_time, mark) {
        entry.set_metadata(metadata);
    }
    Ok(())
}

/// Marks metadata written by this format (version 1), so other text is ignored; fields
/// follow, separated by `;`: `st=<stream time>`, `c=<sequence>.<owner>`.
const PREFIX: &str = "eddy1";

/// The offset metadata for `stream_time` and `mark`; `None` when there is neither (no
/// record seen yet, no two-phase sink).
pub(crate) fn encode(stream_time: i64, mark: Option<&CommitMark>) -> Option<String> {
    let mut out = PREFIX.to_owned();
    if stream_time >= 0 {
        out.push_str(&format!(";st={stream_time}"));
    }
    if let Some(mark) = mark {
        out.push_str(&format!(";c={}.{}", mark.sequence, mark.owner));
    }
    (out.len() > PREFIX.len()).then_some(out)
}

/// The value of `field` in metadata of this format.
fn field<'m>(metadata: &'m str, field: &str) -> Option<&'m str> {
    let mut fields = metadata.split(';');
    if fields.next()? != PREFIX {
        return None;
    }
    fields.find_map(|f| f.strip_prefix(field)?.strip_prefix('='))
}

/// The stream time in offset metadata `metadata`; `None` when it holds none (nothing
/// committed yet, an offset committed by another tool, or an older version of the app).
pub(crate) fn decode(metadata: &str) -> Option<i64> {
    field(metadata, "st")?
        .parse()
        .ok()
        .filter(|t: &i64| *t >= 0)
}

/// The commit mark in offset metadata `metadata`, if it carries one.
pub(crate) fn decode_mark(metadata: &str) -> Option<CommitMark> {
    let (sequence, owner) = field(metadata, "c")?.split_once('.')?;
    if owner.is_empty() {
        return None;
    }
    Some(CommitMark {
        sequence: sequence.parse().ok()?,
        owner: owner.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_time_round_trips_and_foreign_metadata_is_ignored() {
        assert_eq!(encode(i64::MIN, None), None, "no record seen yet");
        let written = encode(1_700_000_000_123, None).unwrap();
        assert_eq!(
            written, "eddy1;st=1700000000123",
            "the format earlier versions wrote"
        );
        assert_eq!(decode(&written), Some(1_700_000_000_123));
        assert_eq!(decode_mark(&written), None);
        for foreign in [
            "",
            "st=5",
            "eddy1;st=x",
            "eddy1;st=-4",
            "eddy2;st=5",
            "eddy1st=5",
        ] {
            assert_eq!(decode(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn commit_marks_ride_beside_the_stream_time() {
        let mark = CommitMark {
            sequence: 17,
            owner: "a1b2".to_owned(),
        };
        let both = encode(5, Some(&mark)).unwrap();
        assert_eq!(decode(&both), Some(5));
        assert_eq!(decode_mark(&both), Some(mark.clone()));
        let mark_only = encode(i64::MIN, Some(&mark)).unwrap();
        assert_eq!(decode(&mark_only), None);
        assert_eq!(decode_mark(&mark_only), Some(mark));
        for foreign in ["eddy1;c=x.o", "eddy1;c=3.", "eddy1;c=3", "eddy2;c=3.o"] {
            assert_eq!(decode_mark(foreign), None, "{foreign:?}");
        }
    }
}
