//! One list page (docs/operations.md#what-a-page-costs): the statements of
//! `longrun_store::sql::PagePlan`, run on a reader in one read transaction.

use crate::{SqliteStore, backend, record};
use longrun_store::{Cursor, Error, ListPage, ListQuery, Result, sql};
use longrun_types::{Name, Timestamp};
use rusqlite::Connection;
use rusqlite::types::Value as Sql;

pub(crate) async fn page(store: &SqliteStore, query: ListQuery) -> Result<ListPage> {
    store
        .read(move |conn| {
            let limit = query.limit;
            let mut plan = sql::PagePlan::new(&query, sql::Dialect::Sqlite);
            // The statements of one page read one snapshot (docs/operations.md#what-a-page-costs).
            let tx = conn.unchecked_transaction().map_err(backend)?;
            if let Some(count) = plan.count() {
                let counted: i64 = run(&tx, &count, |r| r.get(0))?.pop().unwrap_or_default();
                if counted as usize > query.scan_budget {
                    plan.walk_in_list_order();
                }
            }
            let mut operations = run(&tx, &plan.page(), |r| r.get::<_, String>(0))?
                .into_iter()
                .map(record)
                .collect::<Result<Vec<_>>>()?;
            sql::in_list_order(&mut operations);
            let mut resume = None;
            if operations.len() < limit
                && let Some(statement) = plan.resume()
            {
                resume = run(&tx, &statement, |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
                })?
                .pop()
                .map(|(time, name)| -> Result<Cursor> {
                    Ok(Cursor {
                        create_time: Timestamp(time),
                        name: Name::parse(&name).map_err(|e| Error::Backend(e.to_string()))?,
                    })
                })
                .transpose()?;
            }
            Ok(ListPage { operations, resume })
        })
        .await
}

/// The rows `statement` answers, each through `row`.
fn run<T>(
    conn: &Connection,
    statement: &sql::Statement,
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let params = statement.params.iter().map(|p| match p {
        sql::Sql::Integer(i) => Sql::Integer(*i),
        sql::Sql::Text(t) => Sql::Text(t.clone()),
    });
    let mut stmt = conn.prepare_cached(&statement.sql).map_err(backend)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params), row)
        .map_err(backend)?;
    rows.map(|r| r.map_err(backend)).collect()
}
