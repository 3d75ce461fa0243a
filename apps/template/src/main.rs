//! The app's binary: one instance of the app. Run as many as you like with the same
//! `application.id`; they share the partitions.

use eddy::config::ConfigLoader;
use eddy::App;

fn main() -> anyhow::Result<()> {
    // Settings come from `eddy.toml` (when present) and `EDDY__SECTION__KEY` variables, for
    // example EDDY__KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:9092.
    let mut loader = ConfigLoader::new();
    if std::path::Path::new("eddy.toml").is_file() {
        loader = loader.file("eddy.toml");
    }
    let config = loader.load()?;
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
