//! The benchmark's join workload in Eddy: clicks (user → page) left-joined with the users
//! table (user → region, read from `<input>-users` and loaded first), one enriched click per
//! click. Settings come from `EDDY__...` variables (`app.input_topic`, `app.output_topic`).

use eddy::config::ConfigLoader;
use eddy::prelude::*;

fn main() -> anyhow::Result<()> {
    let config = ConfigLoader::new()
        // A task reads partition N of both topics: the broker's range assignor keeps them
        // together.
        .app_default("processing.group_protocol", "consumer")
        .load()?;
    let (input, output) = eddy_bench::app_topics(&config)?;
    let builder = StreamsBuilder::new();
    let users = builder.table(
        &eddy_bench::users_topic(&input),
        StringSerde,
        StringSerde,
        "users",
    );
    builder
        .stream(&input, StringSerde, StringSerde)
        .left_join(&users, |page: &String, region: Option<&String>| {
            format!("{page},{}", region.map_or("-", String::as_str))
        })
        .to(&output, StringSerde, StringSerde);
    App::new(builder.build()?, config).run()?;
    Ok(())
}
