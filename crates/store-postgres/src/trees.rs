//! Trees of operations (`longrun_store::Trees`): the children a cascade ends, in one
//! transaction per call, and the cascades the `operations_cascade` trigger records. The
//! parent check of an insert is `longrun_insert`'s (see the schema).

use super::{PostgresStore, pg, record};
use crate::batch::Batch;
use async_trait::async_trait;
use longrun_store::{Error, Result, Start, Trees};
use longrun_types::{Name, Operation};

#[async_trait]
impl Trees for PostgresStore {
    async fn open_children(&self, parent: &Name) -> Result<u64> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT count(*) FROM operations WHERE parent = $1 \
                 AND state IN ('PENDING', 'RUNNING', 'CANCELLING')",
                &[&parent.as_str()],
            )
            .await
            .map_err(pg)?;
        Ok(row.get::<_, i64>(0).max(0) as u64)
    }

    /// The children are locked `FOR UPDATE` (a lease or a report in flight is waited for),
    /// then written in one `UPDATE … FROM unnest`.
    async fn cascade(&self, parent: &Name, limit: usize, cancel: Start) -> Result<Vec<Operation>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        let rows = tx
            .query(
                "SELECT record FROM operations WHERE parent = $1 \
                 AND state IN ('PENDING', 'RUNNING') ORDER BY name LIMIT $2 FOR UPDATE",
                &[&parent.as_str(), &(limit as i64)],
            )
            .await
            .map_err(pg)?;
        let cancelled = rows
            .iter()
            .map(|row| Ok(cancel(record(row)?)))
            .collect::<Result<Vec<_>>>()?;
        let stored = Operation::write(&tx, &cancelled)
            .await?
            .into_iter()
            .collect::<Result<Vec<_>>>()
            .map_err(|e| match e {
                // Locked above: nothing else can have written them.
                Error::Conflict | Error::NotFound => {
                    Error::Backend(format!("a child of {parent} changed under its lock"))
                }
                e => e,
            })?;
        tx.commit().await.map_err(pg)?;
        Ok(stored)
    }

    async fn cascades(&self, limit: usize) -> Result<Vec<Name>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name FROM cascades ORDER BY name LIMIT $1",
                &[&(limit as i64)],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|row| {
                Name::parse(row.get::<_, &str>(0))
                    .map_err(|e| Error::Backend(format!("corrupt name: {e}")))
            })
            .collect()
    }

    async fn end_cascade(&self, parent: &Name) -> Result<()> {
        let client = self.client().await?;
        client
            .execute("DELETE FROM cascades WHERE name = $1", &[&parent.as_str()])
            .await
            .map_err(pg)?;
        Ok(())
    }
}
