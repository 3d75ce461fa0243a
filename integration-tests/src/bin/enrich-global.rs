//! A test app that enriches clicks (key: click id, value: user) with the user's region from
//! a global table (topic `<input topic>-users`, key: user, value: region, any partition
//! count) in a left join, writing `<user>@<region or "none">` under the click id. Takes
//! wordcount's flags.

use clap::Parser;
use eddy::prelude::*;
use eddy_integration_tests::TestAppArgs;

fn main() -> anyhow::Result<()> {
    let args = TestAppArgs::parse();
    let config = args.eddy.loader().load()?;
    let builder = StreamsBuilder::new();
    let users = builder.global_table(
        &format!("{}-users", args.input_topic),
        StringSerde,
        StringSerde,
        "users",
    );
    builder
        .stream(&args.input_topic, StringSerde, StringSerde)
        .left_join_global(
            &users,
            |_click: &String, user: &String| user.clone(),
            |user: &String, region: Option<&String>| {
                format!("{user}@{}", region.map_or("none", String::as_str))
            },
        )
        .to(&args.output_topic, StringSerde, StringSerde);
    App::new(builder.build()?, config).run()?;
    Ok(())
}
