//! The app's topology: counts events per key, exactly once. Each input record (key = an
//! entity id, value = an event) emits the key's new count to the output topic.

use eddy::dsl::StreamsBuilder;
use eddy::serde::{Nullable, StringSerde};
use eddy::topology::{Topology, TopologyError};

/// The store holding the counts (it names the changelog topic; query it at
/// `GET /state/counts/{key}` on any instance).
pub const COUNTS_STORE: &str = "counts";

/// The topology from `input` to `output`.
///
/// # Errors
/// The topology is invalid.
pub fn topology(input: &str, output: &str) -> Result<Topology, TopologyError> {
    let builder = StreamsBuilder::new();
    builder
        .stream(input, StringSerde, StringSerde)
        .filter(|_key: &String, event: &String| !event.trim().is_empty())
        .group_by_key(StringSerde, StringSerde)
        .count(COUNTS_STORE)
        .map_values(|count: i64| count.to_string())
        .to_stream()
        .to(output, StringSerde, Nullable(StringSerde));
    builder.build()
}
