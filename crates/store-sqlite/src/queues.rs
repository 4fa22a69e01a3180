//! Queues (docs/queues.md): the `queue_counts` table, kept by triggers on `operations` in
//! the transaction of each change (one writer: nothing to contend on), and the pauses of
//! `queue_pauses`, which every lease reads in the writer's transaction (`lease::paused`).

use crate::{SqliteStore, backend};
use async_trait::async_trait;
use longrun_store::{EVERY_TYPE, QueueCounts, QueueStat, Queues, Result, StateCount};
use longrun_types::Timestamp;
use rusqlite::{Connection, params};

/// When the longest-waiting leasable PENDING operation of (project ?1, type ?2) became
/// leasable at ?3: the oldest `create_time` of those without a scheduleTime
/// (`operations_oldest`) and the earliest `schedule_time` that has come
/// (`operations_scheduled`).
const OLDEST: &str = "SELECT min(t) FROM ( \
     SELECT min(create_time) AS t FROM operations WHERE state = 'PENDING' \
     AND schedule_time IS NULL AND project = ?1 AND op_type = ?2 \
     UNION ALL SELECT min(schedule_time) FROM operations WHERE state = 'PENDING' \
     AND schedule_time IS NOT NULL AND schedule_time <= ?3 AND project = ?1 AND op_type = ?2)";

fn counts(conn: &Connection, project: &str, op_type: &str, now: Timestamp) -> Result<QueueCounts> {
    let (pending, running): (i64, i64) = conn
        .prepare_cached(
            "SELECT coalesce(sum(pending), 0), coalesce(sum(running), 0) FROM queue_counts \
             WHERE project = ?1 AND op_type = ?2",
        )
        .and_then(|mut s| s.query_row(params![project, op_type], |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(backend)?;
    let oldest: Option<i64> = conn
        .prepare_cached(OLDEST)
        .and_then(|mut s| s.query_row(params![project, op_type, now.millis()], |r| r.get(0)))
        .map_err(backend)?;
    Ok(QueueCounts {
        pending: pending.max(0) as u64,
        running: running.max(0) as u64,
        oldest_pending: oldest.map(Timestamp),
    })
}

#[async_trait]
impl Queues for SqliteStore {
    async fn set_queue_paused(&self, project: &str, op_type: &str, paused: bool) -> Result<()> {
        let (project, op_type) = (project.to_string(), op_type.to_string());
        self.inner
            .writer
            .write(move |conn| {
                let done = if paused {
                    conn.execute(
                        "INSERT INTO queue_pauses (project, op_type) VALUES (?1, ?2) \
                         ON CONFLICT DO NOTHING",
                        params![project, op_type],
                    )
                } else if op_type == EVERY_TYPE {
                    conn.execute("DELETE FROM queue_pauses WHERE project = ?1", [&project])
                } else {
                    conn.execute(
                        "DELETE FROM queue_pauses WHERE project = ?1 AND op_type = ?2",
                        params![project, op_type],
                    )
                };
                done.map(|_| ()).map_err(backend)
            })
            .await
    }

    async fn paused_queues(&self, project: Option<&str>) -> Result<Vec<(String, String)>> {
        let project = project.map(str::to_string);
        self.read(move |conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT project, op_type FROM queue_pauses \
                     WHERE ?1 IS NULL OR project = ?1 ORDER BY project, op_type",
                )
                .map_err(backend)?;
            statement
                .query_map([project], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect())
                .map_err(backend)
        })
        .await
    }

    async fn queue_counts(
        &self,
        project: &str,
        op_type: &str,
        now: Timestamp,
    ) -> Result<QueueCounts> {
        let (project, op_type) = (project.to_string(), op_type.to_string());
        self.read(move |conn| counts(conn, &project, &op_type, now))
            .await
    }

    async fn queues(&self, project: Option<&str>, now: Timestamp) -> Result<Vec<QueueStat>> {
        let project = project.map(str::to_string);
        self.read(move |conn| {
            let queues: Vec<(String, String)> = conn
                .prepare_cached(
                    "SELECT project, op_type FROM queue_counts \
                     WHERE (?1 IS NULL OR project = ?1) AND (pending > 0 OR running > 0) \
                     ORDER BY project, op_type",
                )
                .and_then(|mut s| {
                    s.query_map([project], |r| Ok((r.get(0)?, r.get(1)?)))?
                        .collect()
                })
                .map_err(backend)?;
            queues
                .into_iter()
                .map(|(project, op_type)| {
                    let counts = counts(conn, &project, &op_type, now)?;
                    Ok(QueueStat {
                        project,
                        op_type,
                        counts,
                    })
                })
                .collect()
        })
        .await
    }

    async fn state_counts(&self) -> Result<Vec<StateCount>> {
        self.read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT project, op_type, state, n FROM state_counts WHERE n > 0 \
                     ORDER BY project, op_type, state",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .map_err(backend)?;
            rows.map(|row| {
                let (project, op_type, state, n) = row.map_err(backend)?;
                Ok(StateCount {
                    project,
                    op_type,
                    state: state.parse().map_err(|_| {
                        longrun_store::Error::Backend(format!("unknown state {state}"))
                    })?,
                    count: n as u64,
                })
            })
            .collect()
        })
        .await
    }
}
