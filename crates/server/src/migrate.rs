//! Copying every operation, and the Earth Engine emulator's assets, from one store to
//! another (`longrun migrate-store`), e.g. from the embedded SQLite store to PostgreSQL. Run
//! it while no server uses either store (a data directory a server holds is refused: its
//! lock is taken).

use crate::config::StoreKind;
use longrun_store::Store;
use longrun_store_postgres::PostgresStore;
use longrun_store_sqlite::SqliteStore;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a store lives.
#[derive(Debug, Clone)]
pub enum Location {
    /// The embedded store in this data directory.
    DataDir(PathBuf),
    /// A PostgreSQL database.
    Database(String),
}

impl Location {
    pub fn kind(&self) -> StoreKind {
        match self {
            Location::DataDir(_) => StoreKind::Sqlite,
            Location::Database(_) => StoreKind::Postgres,
        }
    }

    /// Opens the store. A data directory is prepared as the server prepares it (see
    /// [`crate::data_dir::prepare`]) and locked while the store is open, so this fails
    /// while a server (or another command) uses it.
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(match self {
            Location::DataDir(dir) => {
                crate::data_dir::prepare(dir)?;
                Arc::new(SqliteStore::open(&dir.join(crate::DATABASE_FILE))?)
            }
            Location::Database(url) => Arc::new(PostgresStore::connect(url).await?),
        })
    }
}

/// Operations copied per transaction.
const BATCH: usize = 1000;

/// Copies every operation (record, payload, version, leases) from `from` to `to`, then
/// checks that `to` holds exactly what `from` does. Returns how many were copied.
pub async fn copy(from: &Location, to: &Location) -> anyhow::Result<usize> {
    let (source, target) = (from.open().await?, to.open().await?);
    let mut after = None;
    let mut copied = 0;
    loop {
        let batch = source.scan(after.as_ref(), BATCH).await?;
        let Some((last, _)) = batch.last() else { break };
        after = Some(last.name.clone());
        copied += batch.len();
        target.import(batch).await?;
    }
    let mut after = None;
    let (mut checked, mut source_after) = (0, None);
    loop {
        let copies = target.scan(after.as_ref(), BATCH).await?;
        let originals = source.scan(source_after.as_ref(), BATCH).await?;
        anyhow::ensure!(
            copies == originals,
            "the copy differs from the source after {checked} operations"
        );
        let Some((last, _)) = copies.last() else {
            break;
        };
        after = Some(last.name.clone());
        source_after = after.clone();
        checked += copies.len();
    }
    anyhow::ensure!(
        checked == copied,
        "copied {copied} operations but found {checked}"
    );
    copy_assets(&*source, &*target).await?;
    Ok(copied)
}

/// Copies every asset in name order (a parent before what it holds), then checks the copy.
/// Refuses a target that already holds any of them.
async fn copy_assets(source: &dyn Store, target: &dyn Store) -> anyhow::Result<usize> {
    let mut after: Option<String> = None;
    let mut copied = 0;
    loop {
        let batch = source.scan_assets(after.as_deref(), BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = Some(last.name.clone());
        for asset in batch {
            let name = asset.name.clone();
            match target.put_asset(asset, false).await? {
                longrun_store::AssetWrite::Done => copied += 1,
                other => anyhow::bail!("cannot copy asset {name}: {other:?}"),
            }
        }
    }
    let mut after: Option<String> = None;
    let mut checked = 0;
    loop {
        let copies = target.scan_assets(after.as_deref(), BATCH).await?;
        let originals = source.scan_assets(after.as_deref(), BATCH).await?;
        anyhow::ensure!(
            copies == originals,
            "the asset copy differs after {checked} assets"
        );
        let Some(last) = copies.last() else { break };
        after = Some(last.name.clone());
        checked += copies.len();
    }
    anyhow::ensure!(
        checked == copied,
        "copied {copied} assets but found {checked}"
    );
    Ok(copied)
}
