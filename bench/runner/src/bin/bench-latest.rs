//! The benchmark's large-state workload in Eddy: the latest value of every key, kept in a
//! RocksDB store; each update emits the value's length. Settings come from `EDDY__...`
//! variables (`app.input_topic`, `app.output_topic`).

use eddy::config::ConfigLoader;
use eddy::dsl::StreamsBuilder;
use eddy::serde::{BytesSerde, Nullable, StringSerde};
use eddy::App;

fn main() -> anyhow::Result<()> {
    let config = ConfigLoader::new().load()?;
    let (input, output) = eddy_bench::app_topics(&config)?;
    let builder = StreamsBuilder::new();
    builder
        .stream(&input, StringSerde, BytesSerde)
        .group_by_key(StringSerde, BytesSerde)
        .reduce("latest", |_old, new| new)
        .map_values(|value: Vec<u8>| value.len().to_string())
        .to_stream()
        .to(&output, StringSerde, Nullable(StringSerde));
    App::new(builder.build()?, config).run()?;
    Ok(())
}
