//! One list page (docs/operations.md#what-a-page-costs): the statements of
//! `longrun_store::sql::PagePlan`, run in one REPEATABLE READ snapshot.

use crate::{Param, numbered, pg, record, refs, snapshot};
use deadpool_postgres::GenericClient;
use longrun_store::{Cursor, Error, ListPage, ListQuery, Result, sql};
use longrun_types::{Name, Timestamp};
use tokio_postgres::Row;

pub(crate) async fn page(
    client: &mut deadpool_postgres::Object,
    query: ListQuery,
) -> Result<ListPage> {
    let limit = query.limit;
    let mut plan = sql::PagePlan::new(&query, sql::Dialect::Postgres);
    // The statements of one page read one snapshot (docs/operations.md#what-a-page-costs).
    let tx = snapshot(client).await?;
    if let Some(count) = plan.count() {
        let counted: i64 = run(&tx, &count).await?.first().map_or(0, |r| r.get(0));
        if counted as usize > query.scan_budget {
            plan.walk_in_list_order();
        }
    }
    let mut operations = run(&tx, &plan.page())
        .await?
        .iter()
        .map(record)
        .collect::<Result<Vec<_>>>()?;
    sql::in_list_order(&mut operations);
    let mut resume = None;
    if operations.len() < limit
        && let Some(statement) = plan.resume()
        && let Some(row) = run(&tx, &statement).await?.first()
    {
        resume = Some(Cursor {
            create_time: Timestamp(row.get(0)),
            name: Name::parse(row.get::<_, &str>(1)).map_err(|e| Error::Backend(e.to_string()))?,
        });
    }
    tx.commit().await.map_err(pg)?;
    Ok(ListPage { operations, resume })
}

/// The rows `statement` answers.
async fn run(client: &impl GenericClient, statement: &sql::Statement) -> Result<Vec<Row>> {
    let params: Vec<Param> = statement
        .params
        .iter()
        .map(|v| -> Param {
            match v {
                sql::Sql::Integer(i) => Box::new(*i),
                sql::Sql::Text(t) => Box::new(t.clone()),
            }
        })
        .collect();
    client
        .query(&numbered(&statement.sql, 1), &refs(&params))
        .await
        .map_err(pg)
}
