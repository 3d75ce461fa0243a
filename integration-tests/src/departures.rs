//! Where a one-to-one step's output departs from the order of its input: the points at which
//! the output goes on from an input record other than the next one (records processed twice
//! show as a jump back, records skipped as a jump forward).

use std::fmt;

/// How many records in a row must agree for a resume point to count as found.
const RUN: usize = 4;

/// How far a candidate resume point is compared (the longest agreement wins).
const COMPARED: usize = 64;

/// One point where the output leaves the input's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departure {
    /// Offset of the first output record after the departure.
    pub output_offset: i64,
    /// Offset of the input record the output should have gone on with (`None`: past the end).
    pub expected_input: Option<i64>,
    /// Offset of the input record it went on with (`None`: not found in the input, which may
    /// have been purged there).
    pub resumed_at: Option<i64>,
    /// Output records that matched no input record at this point.
    pub unmatched: usize,
}

impl fmt::Display for Departure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |o: Option<i64>| o.map_or_else(|| "none".to_owned(), |o| format!("@{o}"));
        write!(
            f,
            "output @{} goes on from input {} instead of {}",
            self.output_offset,
            show(self.resumed_at),
            show(self.expected_input)
        )?;
        if self.unmatched > 0 {
            write!(f, " ({} output records matched no input)", self.unmatched)?;
        }
        Ok(())
    }
}

/// Aligns `output` (offset, key) with `input` (offset, key), both in offset order, where
/// each input record should produce exactly one output record with its key, and returns the
/// departures (at most `limit`). An output that starts inside the input (its beginning was
/// purged) is not a departure.
pub fn departures(input: &[(i64, &str)], output: &[(i64, &str)], limit: usize) -> Vec<Departure> {
    let keys: Vec<&str> = input.iter().map(|(_, k)| *k).collect();
    let resume_from = |at: usize| best_resume(&keys, output, at);
    // Where the output joins the input: the input's beginning may have been purged.
    let mut i = 0;
    let mut next = loop {
        if i >= output.len() {
            return Vec::new();
        }
        if let Some(r) = resume_from(i) {
            break r;
        }
        i += 1;
    };
    let mut found = Vec::new();
    while i < output.len() && found.len() < limit {
        if keys.get(next) == Some(&output[i].1) {
            next += 1;
            i += 1;
            continue;
        }
        let mut unmatched = 0;
        let resume = loop {
            if i + unmatched >= output.len() {
                break None;
            }
            if let Some(r) = resume_from(i + unmatched) {
                break Some(r);
            }
            unmatched += 1;
        };
        found.push(Departure {
            output_offset: output[i].0,
            expected_input: input.get(next).map(|(o, _)| *o),
            resumed_at: resume.map(|r| input[r].0),
            unmatched,
        });
        i += unmatched;
        match resume {
            Some(r) => next = r,
            None => break,
        }
    }
    found
}

/// The input position at which `output[at..]` agrees with the input for the most records in
/// a row (at least [`RUN`], or all that is left of the output).
fn best_resume(keys: &[&str], output: &[(i64, &str)], at: usize) -> Option<usize> {
    let agreeing = |s: usize| {
        (0..COMPARED)
            .take_while(|&k| {
                keys.get(s + k)
                    .zip(output.get(at + k))
                    .is_some_and(|(a, (_, b))| a == b)
            })
            .count()
    };
    let needed = RUN.min(output.len() - at);
    let (best, run) = (0..keys.len())
        .filter(|&s| keys[s] == output[at].1)
        .map(|s| (s, agreeing(s)))
        .fold(
            (None, 0),
            |(best, run), (s, n)| {
                if n > run {
                    (Some(s), n)
                } else {
                    (best, run)
                }
            },
        );
    best.filter(|_| run >= needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numbered<'a>(keys: &[&'a str], first: i64) -> Vec<(i64, &'a str)> {
        keys.iter()
            .enumerate()
            .map(|(n, k)| (first + i64::try_from(n).unwrap(), *k))
            .collect()
    }

    const WORDS: [&str; 24] = [
        "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r",
        "s", "t", "u", "v", "w", "x",
    ];

    #[test]
    fn an_output_in_the_inputs_order_has_no_departure() {
        let input = numbered(&WORDS, 100);
        let output = numbered(&WORDS, 0);
        assert!(departures(&input, &output, 5).is_empty());
        let purged = numbered(&WORDS[6..], 106);
        assert!(
            departures(&purged, &output, 5).is_empty(),
            "{:?}",
            departures(&purged, &output, 5)
        );
    }

    #[test]
    fn records_processed_twice_show_as_a_jump_back() {
        let input = numbered(&WORDS, 100);
        let mut keys: Vec<&str> = WORDS[..20].to_vec();
        keys.extend_from_slice(&WORDS[5..]);
        let output = numbered(&keys, 0);
        let found = departures(&input, &output, 5);
        assert_eq!(
            found,
            vec![Departure {
                output_offset: 20,
                expected_input: Some(120),
                resumed_at: Some(105),
                unmatched: 0,
            }]
        );
        assert_eq!(
            found[0].to_string(),
            "output @20 goes on from input @105 instead of @120"
        );
    }

    #[test]
    fn skipped_records_show_as_a_jump_forward() {
        let input = numbered(&WORDS, 0);
        let mut keys: Vec<&str> = WORDS[..4].to_vec();
        keys.extend_from_slice(&WORDS[12..]);
        let found = departures(&input, &numbered(&keys, 50), 5);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].expected_input, Some(4));
        assert_eq!(found[0].resumed_at, Some(12));
    }
}
