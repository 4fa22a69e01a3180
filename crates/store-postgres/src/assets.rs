//! The asset registry's statements (the Earth Engine emulator's assets). Writes run in a
//! transaction that locks the rows they depend on (the parent `FOR SHARE`, the asset
//! `FOR UPDATE`), so a folder cannot be removed while a child is being put into it.

use deadpool_postgres::GenericClient;
use longrun_store::{Asset, AssetWrite, Result, is_project_parent};
use tokio_postgres::Row;

use super::{backend, pg};

const SELECT: &str = "SELECT name, parent, asset_type, record FROM assets";

fn decode(row: &Row) -> Result<Asset> {
    let record: String = row.get(3);
    Ok(Asset {
        name: row.get(0),
        parent: row.get(1),
        asset_type: row.get(2),
        record: serde_json::from_str(&record).map_err(backend)?,
    })
}

async fn exists(client: &impl GenericClient, name: &str, lock: &str) -> Result<bool> {
    Ok(client
        .query_opt(
            &format!("SELECT 1 FROM assets WHERE name = $1 {lock}"),
            &[&name],
        )
        .await
        .map_err(pg)?
        .is_some())
}

async fn has_children(client: &impl GenericClient, name: &str) -> Result<bool> {
    Ok(client
        .query_opt("SELECT 1 FROM assets WHERE parent = $1 LIMIT 1", &[&name])
        .await
        .map_err(pg)?
        .is_some())
}

/// `Assets::asset`.
pub async fn get(client: &impl GenericClient, name: &str) -> Result<Option<Asset>> {
    client
        .query_opt(&format!("{SELECT} WHERE name = $1"), &[&name])
        .await
        .map_err(pg)?
        .as_ref()
        .map(decode)
        .transpose()
}

/// `Assets::assets`: children of `parent` after `after` (`""`: from the start).
pub async fn children(
    client: &impl GenericClient,
    parent: &str,
    after: &str,
    limit: usize,
) -> Result<Vec<Asset>> {
    let rows = client
        .query(
            &format!("{SELECT} WHERE parent = $1 AND name > $2 ORDER BY name LIMIT $3"),
            &[&parent, &after, &(limit as i64)],
        )
        .await
        .map_err(pg)?;
    rows.iter().map(decode).collect()
}

/// `Assets::scan_assets` (`after` `""`: from the start).
pub async fn scan(client: &impl GenericClient, after: &str, limit: usize) -> Result<Vec<Asset>> {
    let rows = client
        .query(
            &format!("{SELECT} WHERE name > $1 ORDER BY name LIMIT $2"),
            &[&after, &(limit as i64)],
        )
        .await
        .map_err(pg)?;
    rows.iter().map(decode).collect()
}

/// `Assets::put_asset`, in one transaction.
pub async fn put(
    client: &mut deadpool_postgres::Object,
    a: &Asset,
    overwrite: bool,
) -> Result<AssetWrite> {
    longrun_store::storable_asset(a)?;
    let tx = client.transaction().await.map_err(pg)?;
    if !is_project_parent(&a.parent) && !exists(&tx, &a.parent, "FOR SHARE").await? {
        return Ok(AssetWrite::NoParent);
    }
    if exists(&tx, &a.name, "FOR UPDATE").await? {
        if !overwrite {
            return Ok(AssetWrite::Exists);
        }
        if has_children(&tx, &a.name).await? {
            return Ok(AssetWrite::NotEmpty);
        }
    }
    let record = serde_json::to_string(&a.record).map_err(backend)?;
    let inserted = tx
        .execute(
            "INSERT INTO assets (name, parent, asset_type, record) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET parent = excluded.parent, \
             asset_type = excluded.asset_type, record = excluded.record",
            &[&a.name, &a.parent, &a.asset_type, &record],
        )
        .await;
    // A unique violation: a concurrent put of the same name won the race.
    commit_unless_taken(tx, inserted).await
}

/// Commits `tx` after its last write, `written`: `Exists` when that write hit a name
/// already taken (a unique violation), else `Done`.
async fn commit_unless_taken(
    tx: deadpool_postgres::Transaction<'_>,
    written: std::result::Result<u64, tokio_postgres::Error>,
) -> Result<AssetWrite> {
    match written {
        Ok(_) => {}
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            return Ok(AssetWrite::Exists);
        }
        Err(e) => return Err(pg(e)),
    }
    tx.commit().await.map_err(pg)?;
    Ok(AssetWrite::Done)
}

/// `Assets::delete_asset`.
pub async fn delete(client: &mut deadpool_postgres::Object, name: &str) -> Result<AssetWrite> {
    let tx = client.transaction().await.map_err(pg)?;
    if !exists(&tx, name, "FOR UPDATE").await? {
        return Ok(AssetWrite::NotFound);
    }
    if has_children(&tx, name).await? {
        return Ok(AssetWrite::NotEmpty);
    }
    tx.execute("DELETE FROM assets WHERE name = $1", &[&name])
        .await
        .map_err(pg)?;
    tx.commit().await.map_err(pg)?;
    Ok(AssetWrite::Done)
}

/// `Assets::move_asset`.
pub async fn rename(
    client: &mut deadpool_postgres::Object,
    from: &str,
    to: &str,
    to_parent: &str,
) -> Result<AssetWrite> {
    let tx = client.transaction().await.map_err(pg)?;
    if !exists(&tx, from, "FOR UPDATE").await? {
        return Ok(AssetWrite::NotFound);
    }
    if exists(&tx, to, "").await? {
        return Ok(AssetWrite::Exists);
    }
    if !is_project_parent(to_parent) && !exists(&tx, to_parent, "FOR SHARE").await? {
        return Ok(AssetWrite::NoParent);
    }
    // The subtree is `from` and the names between `from/` and `from0` ('0' follows '/';
    // the columns compare bytewise, "C").
    let longest: i32 = tx
        .query_one(
            "SELECT max(octet_length(name)) FROM assets \
             WHERE name = $1 OR (name > $1 || '/' AND name < $1 || '0')",
            &[&from],
        )
        .await
        .map_err(pg)?
        .get(0);
    if !longrun_store::move_fits(from, to, longest as usize) {
        return Ok(AssetWrite::TooLong);
    }
    let moved = tx
        .execute(
            "UPDATE assets SET \
               parent = CASE WHEN name = $1 THEN $3 ELSE $2 || substr(parent, length($1) + 1) END, \
               name = $2 || substr(name, length($1) + 1) \
             WHERE name = $1 OR (name > $1 || '/' AND name < $1 || '0')",
            &[&from, &to, &to_parent],
        )
        .await;
    commit_unless_taken(tx, moved).await
}
