//! The benchmark's large-state workload in Eddy: the latest value of every key, kept in a
//! RocksDB store; each update emits the value's length. Settings come from `EDDY__...`
//! variables (`app.input_topic`, `app.output_topic`).

use eddy::config::ConfigLoader;
use eddy::dsl::StreamsBuilder;
use eddy::serde::{BytesSerde, StringSerde};
use eddy::App;

fn main() -> anyhow::Result<()> {
    let config = ConfigLoader::new().load()?;
    let setting = |key: &str| {
        config
            .app_setting(key)
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("`app.{key}` is required"))
    };
    let builder = StreamsBuilder::new();
    builder
        .stream(&setting("input_topic")?, StringSerde, BytesSerde)
        .group_by_key(StringSerde, BytesSerde)
        .reduce("latest", |_old, new| new)
        .to_stream()
        .map_values(|value: Vec<u8>| value.len().to_string())
        .to(&setting("output_topic")?, StringSerde, StringSerde);
    App::new(builder.build()?, config).run()?;
    Ok(())
}
