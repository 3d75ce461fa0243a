//! Command-line flags for every declared setting, derived from [`SETTINGS`]: an app's
//! `--help` lists them with their defaults and meanings, and nothing is written twice.
//!
//! An app flattens [`ConfigArgs`] into its own clap arguments:
//!
//! ```
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Args {
//!     /// Topic of input lines (`app.input_topic`).
//!     #[arg(long)]
//!     input_topic: Option<String>,
//!     #[command(flatten)]
//!     eddy: eddy::config::ConfigArgs,
//! }
//!
//! let args = Args::parse_from([
//!     "app",
//!     "--kafka-bootstrap-servers",
//!     "127.0.0.1:9092",
//!     "--application-id",
//!     "counts",
//!     "--set",
//!     "app.output_topic=counts-out",
//! ]);
//! let config = args
//!     .eddy
//!     .loader()
//!     .flag_opt("app.input_topic", args.input_topic.or(Some("lines".into())))
//!     .environment_from(Vec::<(String, String)>::new())
//!     .load()
//!     .unwrap();
//! assert_eq!(config.application.id, "counts");
//! assert_eq!(config.app_setting("output_topic"), Some("counts-out"));
//! ```

use std::collections::BTreeSet;
use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Command, FromArgMatches};

use super::schema::{Kind, SETTINGS};
use super::ConfigLoader;

/// The heading the settings' flags appear under in `--help`.
const HEADING: &str = "Eddy settings (also EDDY__SECTION__KEY variables or the --config file)";

/// The flags of every declared setting, plus `--config FILE` and `--set KEY=VALUE`.
///
/// Each setting `section.name` is the flag `--section-name` (underscores become dashes); a
/// setting whose `name` no other setting shares also answers to `--name` (so
/// `--bootstrap-servers` sets `kafka.bootstrap_servers`). Flags win over the environment and
/// the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigArgs {
    /// The TOML file given with `--config`.
    pub config: Option<PathBuf>,
    /// `(key, value)` of every setting given as a flag or with `--set`.
    pub settings: Vec<(String, String)>,
}

impl ConfigArgs {
    /// Reads the process's command line as program `name` described by `about`, for an app
    /// with no flags of its own; prints the help (`--help`) or the error and exits when
    /// asked to or when a flag is wrong, as clap does.
    pub fn from_command_line(name: &str, about: &str) -> Self {
        let command = <Self as clap::Args>::augment_args(
            Command::new(name.to_owned()).about(about.to_owned()),
        );
        Self::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
    }

    /// A loader with the file and the flags given (the environment is read when it loads).
    pub fn loader(&self) -> ConfigLoader {
        let mut loader = ConfigLoader::new();
        if let Some(file) = &self.config {
            loader = loader.file(file);
        }
        for (key, value) in &self.settings {
            loader = loader.flag(key, value.clone());
        }
        loader
    }
}

/// `--section-name` of `key`.
fn flag_name(key: &str) -> String {
    key.replace(['.', '_'], "-")
}

/// The short names (`name` of `section.name`) only one setting has.
fn unique_names() -> BTreeSet<&'static str> {
    let mut seen = BTreeSet::new();
    let mut repeated = BTreeSet::new();
    for s in SETTINGS.iter().filter(|s| s.kind != Kind::Prefix) {
        let name = s.key.rsplit('.').next().unwrap_or(s.key);
        if !seen.insert(name) {
            repeated.insert(name);
        }
    }
    seen.difference(&repeated).copied().collect()
}

fn value_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Number { .. } | Kind::OptionalNumber { .. } => "N",
        Kind::Choice { .. } => "CHOICE",
        Kind::Required | Kind::Text { .. } | Kind::Prefix => "VALUE",
    }
}

impl clap::Args for ConfigArgs {
    fn augment_args(cmd: Command) -> Command {
        let unique = unique_names();
        let mut cmd = cmd
            .next_help_heading(HEADING)
            .arg(
                Arg::new("eddy-config")
                    .long("config")
                    .value_name("FILE")
                    .value_parser(clap::value_parser!(PathBuf))
                    .help("A TOML configuration file"),
            )
            .arg(
                Arg::new("eddy-set")
                    .long("set")
                    .value_name("KEY=VALUE")
                    .action(ArgAction::Append)
                    .help("Sets any key, including app.* and kafka.properties.* (repeatable)"),
            );
        for s in SETTINGS.iter().filter(|s| s.kind != Kind::Prefix) {
            let default = s.shown_default().replace('`', "");
            let mut arg = Arg::new(s.key)
                .long(flag_name(s.key))
                .value_name(value_name(s.kind))
                .help(format!("{} (`{}`; default: {default})", s.doc, s.key));
            let name = s.key.rsplit('.').next().unwrap_or(s.key);
            let alias = flag_name(name);
            if unique.contains(name) && alias != flag_name(s.key) {
                arg = arg.alias(alias);
            }
            if let Kind::Choice { choices } = s.kind {
                arg = arg.value_parser(clap::builder::PossibleValuesParser::new(choices.iter()));
            }
            cmd = cmd.arg(arg);
        }
        cmd.next_help_heading(None::<&str>)
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl FromArgMatches for ConfigArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = ConfigArgs {
            config: matches.get_one::<PathBuf>("eddy-config").cloned(),
            settings: Vec::new(),
        };
        for s in SETTINGS.iter().filter(|s| s.kind != Kind::Prefix) {
            if let Some(value) = matches.get_one::<String>(s.key) {
                args.settings.push((s.key.to_owned(), value.clone()));
            }
        }
        for pair in matches.get_many::<String>("eddy-set").into_iter().flatten() {
            let (key, value) = pair.split_once('=').ok_or_else(|| {
                clap::Error::raw(
                    clap::error::ErrorKind::InvalidValue,
                    format!("--set {pair}: expected KEY=VALUE\n"),
                )
            })?;
            args.settings
                .push((key.trim().to_owned(), value.to_owned()));
        }
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct Args {
        #[command(flatten)]
        eddy: ConfigArgs,
    }

    #[test]
    fn every_declared_setting_is_a_flag_with_its_meaning_in_the_help() {
        let help = Args::command().render_long_help().to_string();
        for s in SETTINGS.iter().filter(|s| s.kind != Kind::Prefix) {
            assert!(
                help.contains(&format!("--{}", flag_name(s.key))),
                "{}",
                s.key
            );
            assert!(help.contains(s.key), "{} named in the help", s.key);
        }
    }

    #[test]
    fn flags_aliases_and_set_become_settings() {
        let args = Args::try_parse_from([
            "app",
            "--bootstrap-servers",
            "b:9092",
            "--processing-guarantee",
            "at_least_once",
            "--set",
            "app.input_topic=lines",
            "--config",
            "eddy.toml",
        ])
        .unwrap();
        assert_eq!(args.eddy.config, Some(PathBuf::from("eddy.toml")));
        assert!(args
            .eddy
            .settings
            .contains(&("kafka.bootstrap_servers".into(), "b:9092".into())));
        assert!(args
            .eddy
            .settings
            .contains(&("processing.guarantee".into(), "at_least_once".into())));
        assert!(args
            .eddy
            .settings
            .contains(&("app.input_topic".into(), "lines".into())));
        assert!(
            Args::try_parse_from(["app", "--processing-guarantee", "maybe"]).is_err(),
            "a choice outside the declared ones is refused"
        );
        assert!(Args::try_parse_from(["app", "--set", "novalue"]).is_err());
    }
}
