//! Where a stalled run stands: per partition, the group's committed offset against the
//! partition's stable and high end, for the topics an application reads and writes.

use std::fmt::Write;

use eddy_testkit::{Isolation, Kafka};

/// One line per partition of each of `topics`: the committed offset of `group` (`-` where it
/// committed nothing), the last stable offset and the high watermark, marked `BEHIND` where
/// the group has not committed up to the stable end and `OPEN` where a transaction holds the
/// stable end below the high watermark. Errors are reported in the text: this runs when a
/// test has already failed.
#[must_use]
pub fn report(kafka: &Kafka, group: &str, topics: &[String]) -> String {
    let mut out = format!("where group `{group}` stands (committed / stable end / end):\n");
    for topic in topics {
        let committed = kafka.committed_offsets(group, topic);
        let stable = kafka.end_offsets(topic, Isolation::ReadCommitted);
        let high = kafka.end_offsets(topic, Isolation::ReadUncommitted);
        let (committed, stable, high) = match (committed, stable, high) {
            (Ok(c), Ok(s), Ok(h)) => (c, s, h),
            (c, s, h) => {
                let errors = [c.err(), s.err(), h.err()];
                let _ = writeln!(out, "  {topic}: cannot read its offsets: {errors:?}");
                continue;
            }
        };
        for (p, ((c, s), h)) in committed.iter().zip(&stable).zip(&high).enumerate() {
            let shown = c.map_or_else(|| "-".to_owned(), |c| c.to_string());
            let behind = if c.is_some_and(|c| c < *s) {
                " BEHIND"
            } else {
                ""
            };
            let open = if s < h { " OPEN" } else { "" };
            let _ = writeln!(out, "  {topic} [{p}]: {shown} / {s} / {h}{behind}{open}");
        }
    }
    out
}

/// [`report`] for a wordcount-like run: its input, the application's own topics (named
/// after `application_id`) and its output.
#[must_use]
pub fn report_run(kafka: &Kafka, application_id: &str, input: &str, output: &str) -> String {
    let mut topics = vec![input.to_owned()];
    let internal = kafka.topics_with_prefix(application_id);
    if let Ok(names) = &internal {
        topics.extend(names.iter().cloned());
    }
    topics.push(output.to_owned());
    let mut out = report(kafka, application_id, &topics);
    if let Err(e) = internal {
        let _ = writeln!(out, "  (the application's own topics are unknown: {e})");
    }
    out
}
