//! The input offsets a task's state stands for, carried on its changelog records.
//!
//! A transaction commits a task's changelog records and its input offsets together, so a
//! restore that replays the records of a committed transaction may expect the group to show
//! that transaction's offsets. After a broker failover it once did not: the changelog held a
//! committed transaction whose offsets the group coordinator never showed, and the next owner
//! took the records of that transaction a second time on state that already counted them.
//! The last changelog record a transaction sends per changelog of a task carries the task's
//! next input offsets in a header; a restore notes the highest it replays, and a task whose
//! state stands past its committed offset resumes where the state stands.

use std::collections::BTreeMap;

/// The header naming the input offsets after the transaction that wrote the record:
/// `topic=offset` lines.
pub(crate) const HEADER: &str = "eddy.inputs";

/// Encodes `(input topic, next offset)` pairs for [`HEADER`].
pub(crate) fn encode<'a>(positions: impl IntoIterator<Item = (&'a str, i64)>) -> Vec<u8> {
    let mut out = String::new();
    for (topic, offset) in positions {
        out.push_str(topic);
        out.push('=');
        out.push_str(&offset.to_string());
        out.push('\n');
    }
    out.into_bytes()
}

/// Merges the positions in a [`HEADER`] value into `into`, keeping the highest per topic.
/// Malformed lines are ignored: the header only ever raises a start, never lowers one.
pub(crate) fn merge(value: &[u8], into: &mut BTreeMap<String, i64>) {
    let Ok(text) = std::str::from_utf8(value) else {
        return;
    };
    for line in text.lines() {
        let Some((topic, offset)) = line.rsplit_once('=') else {
            continue;
        };
        let Ok(offset) = offset.parse::<i64>() else {
            continue;
        };
        let entry = into.entry(topic.to_owned()).or_insert(offset);
        *entry = (*entry).max(offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_survive_the_header_and_the_highest_wins() {
        let first = encode([("lines", 10), ("app-counts-repartition", 7)]);
        let second = encode([("lines", 4), ("a=b", 3)]);
        let mut seen = BTreeMap::new();
        merge(&first, &mut seen);
        merge(&second, &mut seen);
        merge(b"garbage\nlines=x\n=\n", &mut seen);
        assert_eq!(
            seen,
            BTreeMap::from([
                ("a=b".to_owned(), 3),
                ("app-counts-repartition".to_owned(), 7),
                ("lines".to_owned(), 10),
            ])
        );
    }
}
