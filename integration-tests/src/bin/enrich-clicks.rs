//! A test app that enriches clicks (key: user, value: click id) with the user's region from
//! a table (topic `<input topic>-users`, key: user, value: region) in a left join, writing
//! `<click id>@<region or "none">` under the user. Takes wordcount's flags.

use clap::Parser;
use eddy::config::ConfigArgs;
use eddy::prelude::*;

/// Flags, as wordcount takes them.
#[derive(Debug, Parser)]
struct Args {
    #[arg(long)]
    input_topic: String,
    #[arg(long)]
    output_topic: String,
    #[command(flatten)]
    eddy: ConfigArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = args.eddy.loader().load()?;
    let builder = StreamsBuilder::new();
    let users = builder.table(
        &format!("{}-users", args.input_topic),
        StringSerde,
        StringSerde,
        "users",
    );
    builder
        .stream(&args.input_topic, StringSerde, StringSerde)
        .left_join(&users, |click: &String, region: Option<&String>| {
            format!("{click}@{}", region.map_or("none", String::as_str))
        })
        .to(&args.output_topic, StringSerde, StringSerde);
    App::new(builder.build()?, config).run()?;
    Ok(())
}
