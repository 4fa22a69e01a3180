//! Trees of operations (`longrun_store::Trees`): the parent check of an insert, the
//! children a cascade ends, and the cascades the `operations_cascade` trigger records.

use super::{SqliteStore, backend, get_record, record, write_update};
use async_trait::async_trait;
use longrun_store::{Error, Result, Start, Trees};
use longrun_types::{Name, Operation, State};
use rusqlite::{Connection, params};

/// On the writer's connection, before a child of `parent` is inserted: the parent must be
/// PENDING or RUNNING; the first child sets its `has_children` (a write of the parent, so a
/// compare-and-set based on an older read of it fails).
pub(crate) fn adopt(conn: &Connection, parent: &Name) -> Result<()> {
    let sql = "SELECT record FROM operations WHERE name = ?1";
    match get_record(conn, sql, [parent.as_str()])? {
        Some(op) if matches!(op.state, State::Pending | State::Running) => {
            if !op.has_children {
                write_update(
                    conn,
                    Operation {
                        has_children: true,
                        ..op
                    },
                )?;
            }
            Ok(())
        }
        _ => Err(Error::ParentClosed(parent.clone())),
    }
}

#[async_trait]
impl Trees for SqliteStore {
    async fn open_children(&self, parent: &Name) -> Result<u64> {
        let parent = parent.as_str().to_string();
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT count(*) FROM operations WHERE parent = ?1 \
                 AND state IN ('PENDING', 'RUNNING', 'CANCELLING')",
            )
            .and_then(|mut s| s.query_row([parent], |r| r.get(0)))
            .map_err(backend)
        })
        .await
    }

    async fn cascade(&self, parent: &Name, limit: usize, cancel: Start) -> Result<Vec<Operation>> {
        let parent = parent.as_str().to_string();
        self.inner
            .writer
            .write_bulk(move |conn| {
                let records = conn
                    .prepare_cached(
                        "SELECT record FROM operations WHERE parent = ?1 \
                         AND state IN ('PENDING', 'RUNNING') LIMIT ?2",
                    )
                    .and_then(|mut s| {
                        s.query_map(params![parent, limit as i64], |r| r.get::<_, String>(0))?
                            .collect::<rusqlite::Result<Vec<String>>>()
                    })
                    .map_err(backend)?;
                records
                    .into_iter()
                    .map(|text| write_update(conn, cancel(record(text)?)))
                    .collect()
            })
            .await
    }

    async fn cascades(&self, limit: usize) -> Result<Vec<Name>> {
        self.read(move |conn| {
            let names = conn
                .prepare_cached("SELECT name FROM cascades ORDER BY name LIMIT ?1")
                .and_then(|mut s| {
                    s.query_map([limit as i64], |r| r.get::<_, String>(0))?
                        .collect::<rusqlite::Result<Vec<String>>>()
                })
                .map_err(backend)?;
            names
                .iter()
                .map(|n| Name::parse(n).map_err(|e| Error::Backend(format!("corrupt name: {e}"))))
                .collect()
        })
        .await
    }

    async fn end_cascade(&self, parent: &Name) -> Result<()> {
        let parent = parent.as_str().to_string();
        self.inner
            .writer
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM cascades WHERE name = ?1")
                    .and_then(|mut s| s.execute([parent]))
                    .map(drop)
                    .map_err(backend)
            })
            .await
    }
}
