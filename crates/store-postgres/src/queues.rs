//! Queues (docs/queues.md): counts summed from the rows the `operations` triggers append to
//! `queue_counts` (folded every second by [`fold`]), and pauses in `queue_pauses`, taken
//! under the project's queue lock, which every lease that took something holds shared while
//! it reads the pauses again and commits (`lease::paused_meanwhile`).

use crate::{PostgresStore, pg};
use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Pool};
use longrun_store::{EVERY_TYPE, QueueCounts, QueueStat, Queues, Result, Signal, StateCount};
use longrun_types::Timestamp;
use std::sync::Weak;
use std::time::Duration;
use tokio::sync::broadcast::Sender;

/// The class of the advisory locks on a project's queues (two-key form: apart from every
/// one-key lock): leases take `(QUEUE_LOCK, hashtext(project))` shared as they end, a pause
/// exclusively.
pub(crate) const QUEUE_LOCK: i32 = 7;
/// The class of the lock that lets one server at a time fold `queue_counts`.
const FOLD_LOCK: i32 = 8;
/// How often each server folds `queue_counts`.
const FOLD_EVERY: Duration = Duration::from_secs(1);

/// Folds the rows of each queue in `queue_counts`, and of each count in `state_counts`,
/// into one, every [`FOLD_EVERY`], while the store that `alive` belongs to exists; a
/// server that finds another folding skips its turn.
pub(crate) async fn fold(pool: Pool, alive: Weak<Sender<Signal>>) {
    while alive.upgrade().is_some() {
        tokio::time::sleep(FOLD_EVERY).await;
        if let Err(e) = fold_once(&pool).await {
            tracing::debug!(error = %e, "cannot fold the queue counts; trying again");
        }
    }
}

async fn fold_once(pool: &Pool) -> Result<()> {
    let mut client = crate::connection(pool).await?;
    let tx = client.transaction().await.map_err(pg)?;
    let turn: bool = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1, 0)", &[&FOLD_LOCK])
        .await
        .map_err(pg)?
        .get(0);
    if turn {
        tx.batch_execute(
            "WITH gone AS (DELETE FROM queue_counts RETURNING project, op_type, pending, running) \
             INSERT INTO queue_counts (project, op_type, pending, running) \
             SELECT project, op_type, sum(pending), sum(running) FROM gone \
             GROUP BY project, op_type HAVING sum(pending) <> 0 OR sum(running) <> 0; \
             WITH gone AS (DELETE FROM state_counts RETURNING project, op_type, state, n) \
             INSERT INTO state_counts (project, op_type, state, n) \
             SELECT project, op_type, state, sum(n) FROM gone \
             GROUP BY project, op_type, state HAVING sum(n) <> 0",
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)
}

/// When the longest-waiting leasable PENDING operation of (project $1, type $2) became
/// leasable at $3 (see `QueueCounts::oldest_pending`).
const OLDEST: &str = "SELECT least( \
     (SELECT min(create_time) FROM operations WHERE state = 'PENDING' \
      AND schedule_time IS NULL AND project = $1 AND op_type = $2), \
     (SELECT min(schedule_time) FROM operations WHERE state = 'PENDING' \
      AND schedule_time IS NOT NULL AND schedule_time <= $3 AND project = $1 AND op_type = $2))";

async fn counts(
    client: &impl GenericClient,
    project: &str,
    op_type: &str,
    now: Timestamp,
) -> Result<QueueCounts> {
    let sums = client
        .prepare_cached(
            "SELECT coalesce(sum(pending), 0)::bigint, coalesce(sum(running), 0)::bigint \
             FROM queue_counts WHERE project = $1 AND op_type = $2",
        )
        .await
        .map_err(pg)?;
    let row = client
        .query_one(&sums, &[&project, &op_type])
        .await
        .map_err(pg)?;
    let (pending, running): (i64, i64) = (row.get(0), row.get(1));
    let oldest = client.prepare_cached(OLDEST).await.map_err(pg)?;
    let oldest: Option<i64> = client
        .query_one(&oldest, &[&project, &op_type, &now.millis()])
        .await
        .map_err(pg)?
        .get(0);
    Ok(QueueCounts {
        pending: pending.max(0) as u64,
        running: running.max(0) as u64,
        oldest_pending: oldest.map(Timestamp),
    })
}

#[async_trait]
impl Queues for PostgresStore {
    async fn set_queue_paused(&self, project: &str, op_type: &str, paused: bool) -> Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        // Waits for the leases that are reading this project's pauses as they end.
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            &[&QUEUE_LOCK, &project],
        )
        .await
        .map_err(pg)?;
        if paused {
            tx.execute(
                "INSERT INTO queue_pauses (project, op_type) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&project, &op_type],
            )
            .await
        } else if op_type == EVERY_TYPE {
            tx.execute("DELETE FROM queue_pauses WHERE project = $1", &[&project])
                .await
        } else {
            tx.execute(
                "DELETE FROM queue_pauses WHERE project = $1 AND op_type = $2",
                &[&project, &op_type],
            )
            .await
        }
        .map_err(pg)?;
        if !paused {
            // Work that was held back is queued work for the waiting lease requests.
            tx.execute("SELECT pg_notify('longrun', '')", &[])
                .await
                .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }

    async fn paused_queues(&self, project: Option<&str>) -> Result<Vec<(String, String)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT project, op_type FROM queue_pauses \
                 WHERE $1::text IS NULL OR project = $1 ORDER BY project, op_type",
                &[&project],
            )
            .await
            .map_err(pg)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn queue_counts(
        &self,
        project: &str,
        op_type: &str,
        now: Timestamp,
    ) -> Result<QueueCounts> {
        let mut client = self.client().await?;
        // One snapshot for the counts and the oldest.
        let tx = crate::snapshot(&mut client).await?;
        let counts = counts(&tx, project, op_type, now).await?;
        tx.commit().await.map_err(pg)?;
        Ok(counts)
    }

    async fn queues(&self, project: Option<&str>, now: Timestamp) -> Result<Vec<QueueStat>> {
        let mut client = self.client().await?;
        let tx = crate::snapshot(&mut client).await?;
        let rows = tx
            .query(
                "SELECT project, op_type FROM queue_counts WHERE $1::text IS NULL OR project = $1 \
                 GROUP BY project, op_type HAVING sum(pending) > 0 OR sum(running) > 0 \
                 ORDER BY project, op_type",
                &[&project],
            )
            .await
            .map_err(pg)?;
        let mut queues = Vec::with_capacity(rows.len());
        for row in rows {
            let (project, op_type): (String, String) = (row.get(0), row.get(1));
            let counts = counts(&tx, &project, &op_type, now).await?;
            queues.push(QueueStat {
                project,
                op_type,
                counts,
            });
        }
        tx.commit().await.map_err(pg)?;
        Ok(queues)
    }

    async fn state_counts(&self) -> Result<Vec<StateCount>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT project, op_type, state, sum(n)::bigint FROM state_counts \
                 GROUP BY project, op_type, state HAVING sum(n) > 0 \
                 ORDER BY project, op_type, state",
                &[],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                let state: &str = r.get(2);
                Ok(StateCount {
                    project: r.get(0),
                    op_type: r.get(1),
                    state: state.parse().map_err(|_| {
                        longrun_store::Error::Backend(format!("unknown state {state}"))
                    })?,
                    count: r.get::<_, i64>(3) as u64,
                })
            })
            .collect()
    }
}
