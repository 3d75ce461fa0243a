//! The `pageviews` binary: runs the page-views topology as one instance of its app.

use clap::Parser;
use eddy::config::ConfigArgs;
use eddy::App;
use pageviews::Topics;

/// Page views enriched with user profiles, sessionized per user and counted per region and
/// minute, exactly once. Every setting is a flag below, a key of the `--config` file or an
/// `EDDY__SECTION__KEY` environment variable; flags win. It joins two topics, so it runs
/// with `processing.group_protocol = consumer` unless told otherwise.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Page views (`app.views_topic`).
    #[arg(long, default_value = "pageviews")]
    views_topic: String,
    /// User profiles (`app.profiles_topic`).
    #[arg(long, default_value = "profiles")]
    profiles_topic: String,
    /// Sessions per user (`app.sessions_topic`).
    #[arg(long, default_value = "user-sessions")]
    sessions_topic: String,
    /// Views per region and minute (`app.regions_topic`).
    #[arg(long, default_value = "region-views")]
    regions_topic: String,
    #[command(flatten)]
    eddy: ConfigArgs,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = args
        .eddy
        .loader()
        .app_default("processing.group_protocol", "consumer")
        .load()?;
    let topology = pageviews::topology(&Topics {
        views: args.views_topic,
        profiles: args.profiles_topic,
        sessions: args.sessions_topic,
        regions: args.regions_topic,
    })?;
    App::new(topology, config).run()?;
    Ok(())
}
