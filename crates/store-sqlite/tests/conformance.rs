//! The storage conformance suite on the embedded SQLite store.

use longrun_store_sqlite::SqliteStore;

async fn fresh() -> Option<(SqliteStore, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("longrun.db")).unwrap();
    Some((store, dir))
}

longrun_store::conformance_suite!(fresh());
