//! Savepoint and restore transfer rates of the snapshot stores for about 1 GB of RocksDB-like
//! files: `files` incompressible files of 64 MiB are hashed and stored (as a snapshot upload
//! does), then fetched and verified (as a restore does), into a local directory store and into
//! the local S3 server.
//!
//! `cargo run --release -p eddy-bench --bin snapshot-store-bench -- [files]` (default 16 =
//! 1 GiB; the S3 server from `EDDY_S3_ENDPOINT`, or `compose/local/s3.sh start`).

use std::io::Write;
use std::time::Instant;

use eddy::snapshot::{content_hash, S3Settings, SnapshotStore, StoreLocation};
use rand::RngCore;

const FILE_BYTES: usize = 64 << 20;

fn main() -> anyhow::Result<()> {
    let files: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(16);
    let scratch = tempfile::tempdir()?;
    let mut local = Vec::new();
    let mut rng = rand::rng();
    let mut chunk = vec![0_u8; 1 << 20];
    for i in 0..files {
        let path = scratch.path().join(format!("{i:06}.sst"));
        let mut f = std::fs::File::create(&path)?;
        for _ in 0..FILE_BYTES >> 20 {
            rng.fill_bytes(&mut chunk);
            f.write_all(&chunk)?;
        }
        local.push(path);
    }
    let mb = (files * FILE_BYTES) as f64 / 1e6;
    let s3 = S3Settings {
        endpoint: Some(eddy_testkit::s3_endpoint()?),
        region: Some("us-east-1".to_owned()),
        access_key_id: Some(eddy_testkit::S3_ACCESS_KEY_ID.to_owned()),
        secret_access_key: Some(eddy_testkit::S3_SECRET_ACCESS_KEY.to_owned()),
    };
    let stores = [
        StoreLocation::Directory(scratch.path().join("store")),
        StoreLocation::parse(&format!(
            "s3://{}/{}",
            eddy_testkit::S3_BUCKET,
            eddy_testkit::unique_name("store-bench")
        ))?,
    ];
    println!("{files} files of 64 MiB ({mb:.0} MB), incompressible");
    for location in stores {
        let store = location.open(&s3)?;
        let (save, restore) = round_trip(store.as_ref(), &local, scratch.path())?;
        println!(
            "{location}: savepoint {:.1} MB/s ({save:.1} s), restore {:.1} MB/s ({restore:.1} s)",
            mb / save,
            mb / restore
        );
    }
    Ok(())
}

/// Stores every file under its hash, then fetches and verifies each; returns both times.
fn round_trip(
    store: &dyn SnapshotStore,
    files: &[std::path::PathBuf],
    scratch: &std::path::Path,
) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let mut blobs = Vec::new();
    for path in files {
        let blob = content_hash(path)?;
        store.put_file(&blob, path)?;
        blobs.push(blob);
    }
    let save = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let back = scratch.join("back");
    for blob in &blobs {
        store.get_file(blob, &back)?;
        anyhow::ensure!(
            content_hash(&back)? == *blob,
            "blob {blob} came back altered"
        );
    }
    Ok((save, started.elapsed().as_secs_f64()))
}
