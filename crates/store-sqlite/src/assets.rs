//! The asset registry's statements (the Earth Engine emulator's assets), run by the store's
//! reader pool and writer thread.

use super::backend;
use longrun_store::{Asset, AssetWrite, Result, is_project_parent};
use rusqlite::{Connection, OptionalExtension, params};

const SELECT: &str = "SELECT name, parent, asset_type, record FROM assets";

fn asset(row: &rusqlite::Row) -> rusqlite::Result<(String, String, String, String)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn decode((name, parent, asset_type, record): (String, String, String, String)) -> Result<Asset> {
    Ok(Asset {
        name,
        parent,
        asset_type,
        record: serde_json::from_str(&record).map_err(backend)?,
    })
}

fn exists(conn: &Connection, name: &str) -> Result<bool> {
    conn.query_row("SELECT 1 FROM assets WHERE name = ?1", [name], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
        .map_err(backend)
}

fn has_children(conn: &Connection, name: &str) -> Result<bool> {
    conn.query_row(
        "SELECT 1 FROM assets WHERE parent = ?1 LIMIT 1",
        [name],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
    .map_err(backend)
}

/// `Assets::asset`.
pub fn get(conn: &Connection, name: &str) -> Result<Option<Asset>> {
    conn.query_row(&format!("{SELECT} WHERE name = ?1"), [name], asset)
        .optional()
        .map_err(backend)?
        .map(decode)
        .transpose()
}

/// `Assets::assets`: children of `parent` after `after` (`""`: from the start).
pub fn children(conn: &Connection, parent: &str, after: &str, limit: usize) -> Result<Vec<Asset>> {
    let mut statement = conn
        .prepare_cached(&format!(
            "{SELECT} WHERE parent = ?1 AND name > ?2 ORDER BY name LIMIT ?3"
        ))
        .map_err(backend)?;
    let rows = statement
        .query_map(params![parent, after, limit as i64], asset)
        .map_err(backend)?;
    rows.map(|r| decode(r.map_err(backend)?)).collect()
}

/// `Assets::scan_assets` (`after` `""`: from the start).
pub fn scan(conn: &Connection, after: &str, limit: usize) -> Result<Vec<Asset>> {
    let mut statement = conn
        .prepare_cached(&format!("{SELECT} WHERE name > ?1 ORDER BY name LIMIT ?2"))
        .map_err(backend)?;
    let rows = statement
        .query_map(params![after, limit as i64], asset)
        .map_err(backend)?;
    rows.map(|r| decode(r.map_err(backend)?)).collect()
}

/// `Assets::put_asset`, in the caller's transaction.
pub fn put(conn: &Connection, a: &Asset, overwrite: bool) -> Result<AssetWrite> {
    longrun_store::storable_asset(a)?;
    if !is_project_parent(&a.parent) && !exists(conn, &a.parent)? {
        return Ok(AssetWrite::NoParent);
    }
    if exists(conn, &a.name)? {
        if !overwrite {
            return Ok(AssetWrite::Exists);
        }
        if has_children(conn, &a.name)? {
            return Ok(AssetWrite::NotEmpty);
        }
    }
    let record = serde_json::to_string(&a.record).map_err(backend)?;
    conn.execute(
        "INSERT INTO assets (name, parent, asset_type, record) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (name) DO UPDATE SET parent = excluded.parent, \
         asset_type = excluded.asset_type, record = excluded.record",
        params![a.name, a.parent, a.asset_type, record],
    )
    .map_err(backend)?;
    Ok(AssetWrite::Done)
}

/// `Assets::delete_asset`.
pub fn delete(conn: &Connection, name: &str) -> Result<AssetWrite> {
    if !exists(conn, name)? {
        return Ok(AssetWrite::NotFound);
    }
    if has_children(conn, name)? {
        return Ok(AssetWrite::NotEmpty);
    }
    conn.execute("DELETE FROM assets WHERE name = ?1", [name])
        .map_err(backend)?;
    Ok(AssetWrite::Done)
}

/// `Assets::move_asset`.
pub fn rename(conn: &Connection, from: &str, to: &str, to_parent: &str) -> Result<AssetWrite> {
    if !exists(conn, from)? {
        return Ok(AssetWrite::NotFound);
    }
    if exists(conn, to)? {
        return Ok(AssetWrite::Exists);
    }
    if !is_project_parent(to_parent) && !exists(conn, to_parent)? {
        return Ok(AssetWrite::NoParent);
    }
    // The subtree is `from` and the names between `from/` and `from0` ('0' follows '/').
    let longest: i64 = conn
        .query_row(
            "SELECT max(length(CAST(name AS BLOB))) FROM assets \
             WHERE name = ?1 OR (name > ?1 || '/' AND name < ?1 || '0')",
            params![from],
            |row| row.get(0),
        )
        .map_err(backend)?;
    if !longrun_store::move_fits(from, to, longest as usize) {
        return Ok(AssetWrite::TooLong);
    }
    conn.execute(
        "UPDATE assets SET \
           parent = CASE WHEN name = ?1 THEN ?3 ELSE ?2 || substr(parent, length(?1) + 1) END, \
           name = ?2 || substr(name, length(?1) + 1) \
         WHERE name = ?1 OR (name > ?1 || '/' AND name < ?1 || '0')",
        params![from, to, to_parent],
    )
    .map_err(backend)?;
    Ok(AssetWrite::Done)
}
