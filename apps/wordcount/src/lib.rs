//! Word counts: each input line is split on Unicode whitespace and lowercased; every word
//! occurrence emits the word's new count (`key` = word, `value` = count in decimal).

use eddy::dsl::StreamsBuilder;
use eddy::serde::{Nullable, StringSerde, UnitSerde};
use eddy::topology::{Topology, TopologyError};

/// Name of the store holding the counts (it keys the changelog and repartition topics).
pub const COUNTS_STORE: &str = "counts";

/// Lowercased words of `line`, split on Unicode whitespace.
pub fn words(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_lowercase).collect()
}

/// The word-count topology from `input` to `output`.
///
/// # Errors
/// Fails only if the topology is invalid (it is not).
pub fn topology(input: &str, output: &str) -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    builder
        .stream(input, UnitSerde, StringSerde)
        .flat_map_values(|line: String| words(&line))
        .select_key(|_: &(), word: &String| word.clone())
        .group_by_key(StringSerde, StringSerde)
        .count(COUNTS_STORE)
        .map_values(|count: i64| count.to_string())
        .to_stream()
        .to(output, StringSerde, Nullable(StringSerde));
    builder.build()
}
