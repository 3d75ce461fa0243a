//! `eddy new`: a new app project from the template in `apps/template`, whose files are
//! compiled into this binary.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

/// The template's name, replaced by the new app's name (and its `_` form in Rust paths).
const TEMPLATE_NAME: &str = "eddy-app-template";

/// Files copied from the template: path in the new project, contents.
const FILES: &[(&str, &str)] = &[
    (
        "src/lib.rs",
        include_str!("../../../../apps/template/src/lib.rs"),
    ),
    (
        "src/main.rs",
        include_str!("../../../../apps/template/src/main.rs"),
    ),
    (
        "tests/topology.rs",
        include_str!("../../../../apps/template/tests/topology.rs"),
    ),
    (
        "eddy.toml",
        include_str!("../../../../apps/template/eddy.toml"),
    ),
    (
        "Dockerfile",
        include_str!("../../../../apps/template/Dockerfile"),
    ),
    (
        "compose.yml",
        include_str!("../../../../apps/template/compose.yml"),
    ),
    (
        "README.md",
        include_str!("../../../../apps/template/README.md"),
    ),
];

/// The versions Eddy is built and tested with: the new project starts from the same set.
const LOCKFILE: &str = include_str!("../../../../Cargo.lock");

/// The workspace manifest, for the pinned versions of the template's other dependencies.
const WORKSPACE_MANIFEST: &str = include_str!("../../../../Cargo.toml");

/// Where this binary's framework sources were when it was built (the default `eddy` path
/// dependency while the crate is not published).
const FRAMEWORK_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// Checks that `name` is usable as a Cargo package, binary and Kafka `application.id`.
fn validate(name: &str) -> anyhow::Result<()> {
    let ok = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!("app name `{name}`: use 1 to 64 lowercase letters, digits, `-` or `_`, starting with a letter");
    }
    Ok(())
}

/// The version the workspace pins for `crate_name`.
fn pinned(crate_name: &str) -> anyhow::Result<String> {
    WORKSPACE_MANIFEST
        .lines()
        .find_map(|line| {
            let rest = line
                .strip_prefix(crate_name)?
                .trim_start()
                .strip_prefix('=')?;
            let rest = rest.trim();
            let quoted = rest.strip_prefix('"')?;
            Some(quoted[..quoted.find('"')?].to_owned())
        })
        .with_context(|| format!("the workspace manifest pins no version of `{crate_name}`"))
}

fn manifest(name: &str, eddy: &str) -> anyhow::Result<String> {
    Ok(format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
anyhow = "{anyhow}"
{eddy}

# RocksDB and librdkafka are C/C++ heavy: optimise dependencies in debug builds too.
[profile.dev]
debug = "line-tables-only"

[profile.dev.package."*"]
opt-level = 2
debug = false

# A project of its own, even when created inside another Cargo workspace.
[workspace]
"#,
        anyhow = pinned("anyhow")?,
    ))
}

/// Creates project `name` in `parent`, with `eddy` from `eddy_path` (default: the framework
/// sources this binary was built from, when they are still there). Returns its directory.
pub fn create(name: &str, parent: &Path, eddy_path: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    validate(name)?;
    let dir = parent.join(name);
    if dir.exists() {
        bail!(
            "{} exists already; choose another name or directory",
            dir.display()
        );
    }
    let framework = eddy_path.or_else(|| {
        let built_from = PathBuf::from(FRAMEWORK_DIR);
        built_from
            .join("Cargo.toml")
            .is_file()
            .then_some(built_from)
    });
    let eddy = match framework {
        Some(path) => {
            let path = path
                .canonicalize()
                .with_context(|| format!("eddy sources at {}", path.display()))?;
            if !path.join("Cargo.toml").is_file() {
                bail!(
                    "{} holds no Cargo.toml: pass the framework/ directory of an Eddy checkout",
                    path.display()
                );
            }
            format!("eddy = {{ path = {:?} }}", path.display().to_string())
        }
        None => format!("eddy = \"{}\"", env!("CARGO_PKG_VERSION")),
    };
    let snake = name.replace('-', "_");
    let rename = |text: &str| {
        text.replace(TEMPLATE_NAME, name)
            .replace(&TEMPLATE_NAME.replace('-', "_"), &snake)
    };
    let write = |relative: &str, contents: &str| -> anyhow::Result<()> {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))
    };
    write("Cargo.toml", &manifest(name, &eddy)?)?;
    write("Cargo.lock", LOCKFILE)?;
    write(".gitignore", "/target\n")?;
    for (relative, contents) in FILES {
        write(relative, &rename(contents))?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_must_suit_cargo_and_kafka() {
        assert!(validate("orders-enricher").is_ok());
        assert!(validate("Orders").is_err());
        assert!(validate("9lives").is_err());
        assert!(validate("a b").is_err());
    }

    #[test]
    fn the_template_is_renamed_and_pinned() {
        let dir = tempfile::tempdir().unwrap();
        let created = create("my-app", dir.path(), Some(PathBuf::from(FRAMEWORK_DIR))).unwrap();
        let main = std::fs::read_to_string(created.join("src/main.rs")).unwrap();
        assert!(main.contains("my_app::topology"), "{main}");
        let manifest = std::fs::read_to_string(created.join("Cargo.toml")).unwrap();
        assert!(manifest.contains("name = \"my-app\""), "{manifest}");
        assert!(manifest.contains(&format!("anyhow = \"{}\"", pinned("anyhow").unwrap())));
        let err = create("my-app", dir.path(), None).unwrap_err();
        assert!(err.to_string().contains("exists already"), "{err}");
    }
}
