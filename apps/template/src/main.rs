//! The app's binary: one instance of the app. Run as many as you like with the same
//! `application.id`; they share the partitions.

use eddy::config::ConfigArgs;
use eddy::App;

fn main() -> anyhow::Result<()> {
    // Settings come from flags (`--help` lists them), `eddy.toml` (or the `--config` file) and
    // `EDDY__SECTION__KEY` variables, for example EDDY__KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092.
    let mut args = ConfigArgs::from_command_line(
        env!("CARGO_PKG_NAME"),
        "Exactly-once counts of events per key (app.input_topic to app.output_topic)",
    );
    if args.config.is_none() && std::path::Path::new("eddy.toml").is_file() {
        args.config = Some("eddy.toml".into());
    }
    let config = args.loader().load()?;
    let setting = |key: &str| {
        config
            .app_setting(key)
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("`app.{key}` is required"))
    };
    let topology =
        eddy_app_template::topology(&setting("input_topic")?, &setting("output_topic")?)?;
    App::new(topology, config).run()?;
    Ok(())
}
