//! Unit tests of a task's stores: opening, committing, restoring, wiping.

use super::*;
use crate::serde::{I64Serde, StringSerde};

fn defs() -> Vec<StoreBuilder> {
    vec![
        StoreBuilder::rocksdb("counts", StringSerde, I64Serde),
        StoreBuilder::in_memory("cache", StringSerde, I64Serde),
    ]
}

fn open(dir: &Path) -> TaskStores {
    TaskStores::open(
        Some(dir),
        &defs(),
        |s| format!("app-{s}-changelog"),
        &RocksMemory::default(),
    )
    .unwrap()
}

#[test]
fn uncommitted_writes_are_readable_but_reach_rocksdb_only_when_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut stores = open(dir.path());
    stores
        .typed::<String, i64>("counts")
        .unwrap()
        .put(&"a".into(), &1)
        .unwrap();
    assert_eq!(
        stores
            .typed::<String, i64>("counts")
            .unwrap()
            .get(&"a".into())
            .unwrap(),
        Some(1)
    );
    assert_eq!(stores.pending_changelog().len(), 1);
    assert_eq!(stores.pending_changelog()[0].0, "app-counts-changelog");
    drop(stores);

    // Never applied: a crash before the Kafka commit leaves RocksDB untouched.
    let mut stores = open(dir.path());
    assert_eq!(
        stores
            .typed::<String, i64>("counts")
            .unwrap()
            .get(&"a".into())
            .unwrap(),
        None
    );
    assert_eq!(stores.changelog_position("counts").unwrap(), None);

    stores
        .typed::<String, i64>("counts")
        .unwrap()
        .put(&"a".into(), &2)
        .unwrap();
    stores
        .apply_committed(&BTreeMap::from([("counts".to_owned(), 41)]))
        .unwrap();
    stores
        .typed::<String, i64>("counts")
        .unwrap()
        .put(&"b".into(), &9)
        .unwrap();
    stores.discard_pending();
    drop(stores);

    let mut stores = open(dir.path());
    let view = stores.typed::<String, i64>("counts").unwrap();
    assert_eq!(
        view.get(&"a".into()).unwrap(),
        Some(2),
        "applied write survives reopen"
    );
    assert_eq!(
        view.get(&"b".into()).unwrap(),
        None,
        "discarded write is gone"
    );
    assert_eq!(stores.changelog_position("counts").unwrap(), Some(41));
    assert_eq!(
        stores.changelog_position("cache").unwrap(),
        None,
        "memory stores replay fully"
    );
}

#[test]
fn restored_records_and_their_position_are_written_together() {
    let dir = tempfile::tempdir().unwrap();
    let mut stores = open(dir.path());
    let records = vec![
        (b"x".to_vec(), Some(7_i64.to_be_bytes().to_vec())),
        (b"y".to_vec(), Some(1_i64.to_be_bytes().to_vec())),
        (b"y".to_vec(), None),
    ];
    stores.apply_restored("counts", records, 3).unwrap();
    let view = stores.typed::<String, i64>("counts").unwrap();
    assert_eq!(view.get(&"x".into()).unwrap(), Some(7));
    assert_eq!(view.get(&"y".into()).unwrap(), None, "a tombstone deletes");
    assert_eq!(stores.changelog_position("counts").unwrap(), Some(3));
    let err = stores
        .typed::<String, String>("counts")
        .err()
        .map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.contains("holds (alloc::string::String, i64)")));
}

/// Total size of the write-ahead log files in `dir`.
fn log_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// Every commit writes the meta column family too; its memtable never fills, so unless
/// it flushes with the stores' memtables it keeps every write-ahead log alive and an open
/// after a crash replays them all. The log must stay near one memtable's worth.
#[test]
fn the_write_ahead_log_is_released_as_the_stores_flush() {
    let dir = tempfile::tempdir().unwrap();
    // 1 MiB memtables.
    let memory = RocksMemory::new(1 << 20, 4 << 20);
    let defs = [StoreBuilder::rocksdb("counts", StringSerde, I64Serde)];
    let mut stores = TaskStores::open(
        Some(dir.path()),
        &defs,
        |s| format!("{s}-changelog"),
        &memory,
    )
    .unwrap();
    // 16 MiB in 32 commits of 512 KiB.
    for commit in 0..32_i64 {
        let records = (0..512)
            .map(|i| (format!("k{commit}-{i}").into_bytes(), Some(vec![7; 1024])))
            .collect();
        stores.apply_restored("counts", records, commit).unwrap();
    }
    let bound = 4 << 20;
    let released = crate::backoff::poll_until(
        std::time::Duration::from_millis(20),
        std::time::Duration::from_secs(10),
        || log_bytes(dir.path()) < bound,
    );
    assert!(
        released,
        "{} bytes of write-ahead log after 16 MiB written with 1 MiB memtables",
        log_bytes(dir.path())
    );
}

#[test]
fn a_wiped_store_is_empty_and_restores_from_the_beginning() {
    let dir = tempfile::tempdir().unwrap();
    let defs = [StoreBuilder::rocksdb("counts", StringSerde, I64Serde)];
    let mut stores = TaskStores::open(
        Some(dir.path()),
        &defs,
        |s| format!("app-{s}-changelog"),
        &RocksMemory::default(),
    )
    .unwrap();
    let records = (0..100)
        .map(|i| (format!("k{i}").into_bytes(), Some(vec![i])))
        .collect();
    stores.apply_restored("counts", records, 100).unwrap();
    assert_eq!(stores.changelog_position("counts").unwrap(), Some(100));
    assert!(stores.synced_at("counts").unwrap().is_some());
    stores.wipe("counts").unwrap();
    assert_eq!(stores.changelog_position("counts").unwrap(), None);
    assert_eq!(stores.synced_at("counts").unwrap(), None);
    let view = stores.typed::<String, i64>("counts").unwrap();
    for key in ["k0", "k50", "k99"] {
        assert_eq!(view.get(&key.to_owned()).unwrap(), None, "{key} survived");
    }
}
