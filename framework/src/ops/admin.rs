//! Who may use the mutating ops routes, and where they may write: the admin token and the
//! directories a savepoint may go to.

use std::path::{Component, Path, PathBuf};

use axum::http::{header, HeaderMap};
use serde_json::json;

use super::{reply, Reply};
use crate::config::{EddyConfig, OpsConfig};

/// Refuses the request unless `ops.admin_token` is unset or the request carries
/// `Authorization: Bearer <token>`.
pub(super) fn authorize(ops: &OpsConfig, headers: &HeaderMap) -> Result<(), Reply> {
    let Some(token) = &ops.admin_token else {
        return Ok(());
    };
    let offered = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if same(offered.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(reply(
            401,
            json!({"error": "this route needs `Authorization: Bearer <ops.admin_token>`"}),
        ))
    }
}

/// Compares without stopping at the first difference, so timing tells nothing of the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The store a savepoint request may write to: `snapshot.dir` by default; a requested
/// directory only when it is `snapshot.dir` or inside one of `ops.savepoint_dirs`.
pub(super) fn savepoint_store(
    config: &EddyConfig,
    requested: Option<PathBuf>,
) -> Result<PathBuf, Reply> {
    let Some(requested) = requested else {
        return config.snapshot.dir.clone().ok_or_else(|| {
            reply(
                400,
                json!({"error": "no snapshot store: configure `snapshot.dir`, or pass ?store=<dir> inside `ops.savepoint_dirs`"}),
            )
        });
    };
    let allowed = config
        .snapshot
        .dir
        .iter()
        .chain(&config.ops.savepoint_dirs)
        .any(|root| inside(&requested, root));
    if allowed {
        Ok(requested)
    } else {
        Err(reply(
            403,
            json!({"error": format!("store `{}` is neither `snapshot.dir` nor inside `ops.savepoint_dirs`", requested.display())}),
        ))
    }
}

/// True when `path` is `root` or below it, judged on the words of both (no `..`, both
/// absolute or both relative alike), so a path that climbs out is never inside.
fn inside(path: &Path, root: &Path) -> bool {
    let climbs = |p: &Path| p.components().any(|c| matches!(c, Component::ParentDir));
    !climbs(path) && !climbs(root) && path.starts_with(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigLoader;

    fn config(dirs: &str) -> EddyConfig {
        ConfigLoader::new()
            .environment_from(Vec::<(String, String)>::new())
            .flag("application.id", "app")
            .flag("kafka.bootstrap_servers", "127.0.0.1:9092")
            .flag("snapshot.dir", "/data/snapshots")
            .flag("ops.savepoint_dirs", dirs)
            .flag("ops.admin_token", "s3cret")
            .load()
            .unwrap()
    }

    #[test]
    fn only_the_configured_stores_are_writable() {
        let config = config("/backups, /mnt/blue");
        let ok = |p: &str| savepoint_store(&config, Some(PathBuf::from(p))).is_ok();
        assert!(ok("/data/snapshots"));
        assert!(ok("/backups/2026-11"));
        assert!(ok("/mnt/blue"));
        assert!(!ok("/etc"));
        assert!(!ok("/backups/../etc"));
        assert!(
            !ok("/mnt/bluegreen"),
            "a prefix of a name is not a directory"
        );
        assert_eq!(
            savepoint_store(&config, None).ok(),
            Some(PathBuf::from("/data/snapshots"))
        );
    }

    #[test]
    fn the_token_is_required_exactly() {
        let config = config("/backups");
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, value.parse().unwrap());
            authorize(&config.ops, &headers).is_ok()
        };
        assert!(with("Bearer s3cret"));
        assert!(!with("Bearer s3cre"));
        assert!(!with("Bearer s3cret2"));
        assert!(!with("s3cret"));
        assert!(authorize(&config.ops, &HeaderMap::new()).is_err());
        assert!(
            !format!("{:?}", config.ops).contains("s3cret"),
            "the token never shows in debug output"
        );
    }
}
