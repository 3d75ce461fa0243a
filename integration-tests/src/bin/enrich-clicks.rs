//! A test app that enriches clicks (key: user, value: click id) with the user's region from
//! a table (topic `<input topic>-users`, key: user, value: region) in a left join, writing
//! `<click id>@<region or "none">` under the user. Takes wordcount's flags, and
//! `--versioned-history-ms` (or `ENRICH_CLICKS_VERSIONED_MS`) to read the users as a
//! versioned table with that much history (clicks then meet the region as of their time).

use clap::Parser;
use eddy::prelude::*;
use eddy_integration_tests::TestAppArgs;

/// Flags, as wordcount takes them.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    app: TestAppArgs,
    /// Reads the users as a versioned table keeping this much history; latest only when 0.
    #[arg(long, env = "ENRICH_CLICKS_VERSIONED_MS", default_value_t = 0)]
    versioned_history_ms: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = args.app.eddy.loader().load()?;
    let builder = StreamsBuilder::new();
    let topic = format!("{}-users", args.app.input_topic);
    let users = if args.versioned_history_ms > 0 {
        builder.versioned_table(
            &topic,
            StringSerde,
            StringSerde,
            "users",
            std::time::Duration::from_millis(args.versioned_history_ms),
        )
    } else {
        builder.table(&topic, StringSerde, StringSerde, "users")
    };
    builder
        .stream(&args.app.input_topic, StringSerde, StringSerde)
        .left_join(&users, |click: &String, region: Option<&String>| {
            format!("{click}@{}", region.map_or("none", String::as_str))
        })
        .to(&args.app.output_topic, StringSerde, StringSerde);
    App::new(builder.build()?, config).run()?;
    Ok(())
}
