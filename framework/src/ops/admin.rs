//! Who may use the mutating ops routes, and where they may write: the admin token and the
//! directories a savepoint may go to.

use axum::http::{header, HeaderMap};
use serde_json::json;

use super::{reply, Reply};
use crate::config::{EddyConfig, OpsConfig};
use crate::snapshot::StoreLocation;

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
/// location only when it is `snapshot.dir` or inside one of `ops.savepoint_dirs`.
pub(super) fn savepoint_store(
    config: &EddyConfig,
    requested: Option<String>,
) -> Result<StoreLocation, Reply> {
    let Some(requested) = requested else {
        return config.snapshot.dir.clone().ok_or_else(|| {
            reply(
                400,
                json!({"error": "no snapshot store: configure `snapshot.dir`, or pass ?store=<location> inside `ops.savepoint_dirs`"}),
            )
        });
    };
    let location = StoreLocation::parse(&requested)
        .map_err(|e| reply(400, json!({"error": e.to_string()})))?;
    let allowed = location.check_shared().is_ok()
        && config
            .snapshot
            .dir
            .iter()
            .chain(&config.ops.savepoint_dirs)
            .any(|root| location.is_inside(root));
    if allowed {
        Ok(location)
    } else {
        Err(reply(
            403,
            json!({"error": format!("store `{requested}` is neither `snapshot.dir` nor inside `ops.savepoint_dirs`")}),
        ))
    }
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
        let config = config("/backups, /mnt/blue, s3://snaps/blue");
        let ok = |p: &str| savepoint_store(&config, Some(p.to_owned())).is_ok();
        assert!(ok("/data/snapshots"));
        assert!(ok("/backups/2026-11"));
        assert!(ok("/mnt/blue"));
        assert!(!ok("/etc"));
        assert!(!ok("/backups/../etc"));
        assert!(
            !ok("/mnt/bluegreen"),
            "a prefix of a name is not a directory"
        );
        assert!(ok("s3://snaps/blue/2026"));
        assert!(!ok("s3://snaps/green"));
        assert!(!ok("s3://other/blue"));
        assert!(!ok("backups"), "relative");
        assert_eq!(
            savepoint_store(&config, None).ok(),
            Some(StoreLocation::Directory("/data/snapshots".into()))
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
