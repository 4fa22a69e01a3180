//! Copying a whole store to another (`longrun migrate-store`), e.g. from the embedded SQLite
//! store to PostgreSQL: every operation, the Earth Engine emulator's assets, the schedules,
//! the service accounts, the project registry and each project's `maxConcurrentExports`.
//! Run it while no server uses either store (a data directory a server holds is refused: its
//! lock is taken).

use crate::config::StoreKind;
use longrun_store::Store;
use longrun_store_postgres::PostgresStore;
use longrun_store_sqlite::SqliteStore;
use longrun_types::Schedule;
use std::collections::BTreeSet;
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
/// checks that `to` holds exactly what `from` does; then the rest of the store (see the
/// module's docs), each checked the same way. Refuses a target that already holds any of
/// it. Returns how many operations were copied.
pub async fn copy(from: &Location, to: &Location) -> anyhow::Result<usize> {
    let (source, target) = (from.open().await?, to.open().await?);
    let mut after = None;
    let mut copied = 0;
    // Every project with operations, for their settings.
    let mut projects = BTreeSet::new();
    loop {
        let batch = source.scan(after.as_ref(), BATCH).await?;
        let Some((last, _)) = batch.last() else { break };
        after = Some(last.name.clone());
        copied += batch.len();
        projects.extend(
            batch
                .iter()
                .map(|(op, _)| op.name.project().as_str().to_string()),
        );
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
    projects.extend(copy_schedules(&*source, &*target).await?);
    copy_accounts(&*source, &*target).await?;
    projects.extend(copy_registrations(&*source, &*target).await?);
    for project in &projects {
        let cap = source.max_concurrent_exports(project).await?;
        if cap != 0 {
            target.set_max_concurrent_exports(project, cap).await?;
        }
        anyhow::ensure!(
            target.max_concurrent_exports(project).await? == cap,
            "the copy of project {project}'s maxConcurrentExports differs"
        );
    }
    Ok(copied)
}

/// Copies every schedule as it is (its next and last fire times with it; the copy's
/// version starts again at 1), then checks the copy. Returns their projects.
async fn copy_schedules(source: &dyn Store, target: &dyn Store) -> anyhow::Result<Vec<String>> {
    let mut after: Option<String> = None;
    let mut projects = Vec::new();
    loop {
        let batch = source.scan_schedules(after.as_deref(), BATCH).await?;
        let Some(last) = batch.last() else { break };
        after = Some(last.name.clone());
        for schedule in batch {
            let (name, project) = (schedule.name.clone(), schedule.project().to_string());
            let copy = target.create_schedule(schedule.clone()).await?;
            anyhow::ensure!(
                copy.is_some_and(|c| Schedule {
                    version: schedule.version,
                    ..c
                } == schedule),
                "cannot copy schedule {name}: the target holds one of that name"
            );
            projects.push(project);
        }
    }
    let copies = target.scan_schedules(None, usize::MAX).await?.len();
    anyhow::ensure!(
        copies == projects.len(),
        "copied {} schedules but found {copies}",
        projects.len()
    );
    Ok(projects)
}

/// Copies every service account (its key ids and disabled flag with it).
async fn copy_accounts(source: &dyn Store, target: &dyn Store) -> anyhow::Result<()> {
    let accounts = source.accounts().await?;
    for account in &accounts {
        anyhow::ensure!(
            target.create_account(account.clone()).await?,
            "cannot copy service account {}: the target holds one of that email",
            account.email
        );
    }
    anyhow::ensure!(
        target.accounts().await? == accounts,
        "the copy of the service accounts differs"
    );
    Ok(())
}

/// Copies the project registry. Returns the registered projects.
async fn copy_registrations(source: &dyn Store, target: &dyn Store) -> anyhow::Result<Vec<String>> {
    let registrations = source.registrations().await?;
    for registration in &registrations {
        anyhow::ensure!(
            target.register_project(registration.clone()).await?,
            "cannot copy the registration of project {}: the target has one",
            registration.project
        );
    }
    anyhow::ensure!(
        target.registrations().await? == registrations,
        "the copy of the project registry differs"
    );
    Ok(registrations.into_iter().map(|r| r.project).collect())
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
