//! The benchmark's PostgreSQL workload in Eddy: every input record (key `k<i>`, value `i`)
//! becomes a row `(k, v)` of the append table `PG_TABLE` at `PG_URL`, through the
//! exactly-once two-phase sink. Settings come from `EDDY__...` variables
//! (`app.input_topic`, `app.output_topic` unused).

use eddy::config::ConfigLoader;
use eddy::dsl::StreamsBuilder;
use eddy::serde::StringSerde;
use eddy::App;
use eddy_postgres::{Change, PostgresSink, PostgresStreamExt, Table};

fn main() -> anyhow::Result<()> {
    let config = ConfigLoader::new().load()?;
    let (input, _) = eddy_bench::app_topics(&config)?;
    let url = std::env::var("PG_URL")?;
    let table = std::env::var("PG_TABLE")?;
    let sink = PostgresSink::new(
        "bench",
        &url,
        Table::append(&table, &["k", "v"])?,
        |k: &String, v: &String| {
            Some(Change::Row(vec![
                k.as_str().into(),
                v.parse::<i64>().unwrap_or(-1).into(),
            ]))
        },
    )?;
    let builder = StreamsBuilder::new();
    builder
        .stream(&input, StringSerde, StringSerde)
        .to_postgres(&sink);
    App::new(builder.build()?, config).run()?;
    Ok(())
}
