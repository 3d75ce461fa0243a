//! The benchmark's windowed workload in Eddy: clicks (user → page) counted per user in
//! tumbling one-second event-time windows without grace, one final result per window.
//! Settings come from `EDDY__...` variables (`app.input_topic`, `app.output_topic`).

use std::time::Duration;

use eddy::config::ConfigLoader;
use eddy::prelude::*;

fn main() -> anyhow::Result<()> {
    let config = ConfigLoader::new().load()?;
    let (input, output) = eddy_bench::app_topics(&config)?;
    let builder = StreamsBuilder::new();
    builder
        .stream(&input, StringSerde, StringSerde)
        .group_by_key(StringSerde, StringSerde)
        .windowed_by(TimeWindows::of(Duration::from_secs(1)).grace(Duration::ZERO))
        .emit(Emit::OnWindowClose)
        .count("counts")
        .map_values(|n: i64| n.to_string())
        .to_stream()
        .to(
            &output,
            WindowedSerde::new(StringSerde),
            Nullable(StringSerde),
        );
    App::new(builder.build()?, config).run()?;
    Ok(())
}
