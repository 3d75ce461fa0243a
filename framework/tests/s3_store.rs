//! The S3 snapshot store against a real S3 server (`compose/local/s3.sh`, started when
//! `EDDY_S3_ENDPOINT` is unset): files small and multipart, documents, listing, refused keys,
//! and garbage collection, as the directory store does them.

use std::sync::Arc;
use std::time::Duration;

use eddy::snapshot::{
    collect_garbage, content_hash, S3Settings, SnapshotStore, StoreLocation, TaskSnapshot,
    MIN_GC_GRACE,
};

fn store(prefix: &str) -> Result<Arc<dyn SnapshotStore>, Box<dyn std::error::Error>> {
    let settings = S3Settings {
        endpoint: Some(eddy_testkit::s3_endpoint()?),
        region: Some("us-east-1".to_owned()),
        access_key_id: Some(eddy_testkit::S3_ACCESS_KEY_ID.to_owned()),
        secret_access_key: Some(eddy_testkit::S3_SECRET_ACCESS_KEY.to_owned()),
    };
    let location = StoreLocation::parse(&format!(
        "s3://{}/{}",
        eddy_testkit::S3_BUCKET,
        eddy_testkit::unique_name(prefix)
    ))?;
    Ok(location.open(&settings)?)
}

#[test]
fn files_and_documents_round_trip_through_s3() {
    let store = store("s3-store").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // One file in a single request, one large enough for a multipart upload.
    let small = dir.path().join("small.sst");
    std::fs::write(&small, b"small file").unwrap();
    let large = dir.path().join("large.sst");
    let bytes: Vec<u8> = (0..40_u32 << 20).map(|i| (i % 251) as u8).collect();
    std::fs::write(&large, &bytes).unwrap();
    for path in [&small, &large] {
        let blob = content_hash(path).unwrap();
        assert!(store.put_file(&blob, path).unwrap(), "first copy");
        assert!(!store.put_file(&blob, path).unwrap(), "stored once");
        let back = dir.path().join("back");
        store.get_file(&blob, &back).unwrap();
        assert_eq!(content_hash(&back).unwrap(), blob);
    }
    let listed = store.list_files().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().any(|f| f.size == 40 << 20), "{listed:?}");

    let absent = "0".repeat(64);
    let missing = store.get_file(&absent, &dir.path().join("x")).unwrap_err();
    assert!(
        missing.to_string().contains(&format!("blob {absent}")),
        "{missing}"
    );
    assert!(store.get_document("../escape.json").is_err());
    assert!(store.put_document("a//b.json", b"{}").is_err());

    store
        .put_document("app/savepoints/s1/manifest.json", b"{}")
        .unwrap();
    store
        .put_document("app/checkpoints/0_0/1.json", b"{}")
        .unwrap();
    assert_eq!(
        store
            .get_document("app/savepoints/s1/manifest.json")
            .unwrap(),
        Some(b"{}".to_vec())
    );
    assert_eq!(store.get_document("app/nothing").unwrap(), None);
    assert_eq!(
        store.list("app").unwrap(),
        vec!["checkpoints", "savepoints"]
    );
    assert_eq!(store.list("").unwrap(), vec!["app", "files"]);
    store.delete_document("app/checkpoints/0_0/1.json").unwrap();
    store.delete_document("app/checkpoints/0_0/1.json").unwrap();
    assert!(store.list("app/checkpoints/0_0").unwrap().is_empty());
}

#[test]
fn garbage_collection_on_s3_keeps_what_snapshots_reference() {
    let store = store("s3-gc").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut blobs = Vec::new();
    for content in ["kept", "orphan"] {
        let path = dir.path().join(content);
        std::fs::write(&path, content).unwrap();
        let blob = content_hash(&path).unwrap();
        store.put_file(&blob, &path).unwrap();
        blobs.push(blob);
    }
    let part = TaskSnapshot {
        task: "0_0".to_owned(),
        epoch: None,
        files: vec![eddy::snapshot::SnapshotFile {
            name: "000001.sst".to_owned(),
            blob: blobs[0].clone(),
            size: 4,
        }],
        stores: Vec::new(),
        inputs: Vec::new(),
        created_ms: 0,
    };
    store
        .put_document(
            "app/checkpoints/0_0/0000000000000001.json",
            &serde_json::to_vec(&part).unwrap(),
        )
        .unwrap();
    let now = eddy::record::wall_clock_ms();
    let fresh = collect_garbage(store.as_ref(), MIN_GC_GRACE, now, false).unwrap();
    assert_eq!((fresh.removed, fresh.recent, fresh.referenced), (0, 1, 1));
    let later = now + 3 * 3_600_000;
    let done = collect_garbage(store.as_ref(), MIN_GC_GRACE, later, false).unwrap();
    assert_eq!(done.removed, 1, "{done:?}");
    let left: Vec<String> = store
        .list_files()
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(left, vec![blobs[0].clone()]);
    assert!(collect_garbage(store.as_ref(), Duration::from_secs(10), later, false).is_err());
}
