//! The benchmark's stateless workload in Eddy: drop blank lines, upper-case the rest. Settings
//! come from `EDDY__...` variables (`app.input_topic`, `app.output_topic`).

use eddy::config::ConfigLoader;
use eddy::dsl::StreamsBuilder;
use eddy::serde::{StringSerde, UnitSerde};
use eddy::App;

fn main() -> anyhow::Result<()> {
    let config = ConfigLoader::new().load()?;
    let (input, output) = eddy_bench::app_topics(&config)?;
    let builder = StreamsBuilder::new();
    builder
        .stream(&input, UnitSerde, StringSerde)
        .filter(|_: &(), line: &String| !line.trim().is_empty())
        .map_values(|line: String| line.to_uppercase())
        .to(&output, UnitSerde, StringSerde);
    App::new(builder.build()?, config).run()?;
    Ok(())
}
