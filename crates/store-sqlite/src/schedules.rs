//! Schedules (docs/schedules.md): the `schedules` table, each record kept whole with the
//! columns its reads need (project, next fire time, version).

use crate::{SqliteStore, backend};
use async_trait::async_trait;
use longrun_store::{Error, Result, Schedules, storable_schedule};
use longrun_types::{Schedule, Timestamp};
use rusqlite::{Connection, OptionalExtension, params};

fn record(text: String) -> Result<Schedule> {
    serde_json::from_str(&text).map_err(|e| Error::Backend(format!("corrupt schedule: {e}")))
}

fn records(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Schedule>> {
    let mut stmt = conn.prepare_cached(sql).map_err(backend)?;
    let rows = stmt
        .query_map(params, |r| r.get::<_, String>(0))
        .map_err(backend)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(backend)?;
    rows.into_iter().map(record).collect()
}

fn next_fire(s: &Schedule) -> Option<i64> {
    s.next_fire_time.map(Timestamp::millis)
}

#[async_trait]
impl Schedules for SqliteStore {
    async fn create_schedule(&self, mut schedule: Schedule) -> Result<Option<Schedule>> {
        storable_schedule(&schedule)?;
        schedule.version = 1;
        let text = serde_json::to_string(&schedule).map_err(backend)?;
        self.inner
            .writer
            .write(move |conn| {
                let added = conn
                    .prepare_cached(
                        "INSERT INTO schedules (name, project, next_fire_time, version, record) \
                         VALUES (?1, ?2, ?3, 1, ?4) ON CONFLICT (name) DO NOTHING",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            schedule.name,
                            schedule.project(),
                            next_fire(&schedule),
                            text
                        ])
                    })
                    .map_err(backend)?;
                Ok((added == 1).then_some(schedule))
            })
            .await
    }

    async fn schedule(&self, name: &str) -> Result<Option<Schedule>> {
        let name = name.to_string();
        self.read(move |conn| {
            conn.prepare_cached("SELECT record FROM schedules WHERE name = ?1")
                .and_then(|mut s| s.query_row([name], |r| r.get::<_, String>(0)).optional())
                .map_err(backend)?
                .map(record)
                .transpose()
        })
        .await
    }

    async fn schedules(
        &self,
        project: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Schedule>> {
        let (project, after) = (project.to_string(), after.unwrap_or("").to_string());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            records(
                conn,
                "SELECT record FROM schedules WHERE project = ?1 AND name > ?2 \
                 ORDER BY name LIMIT ?3",
                params![project, after, limit],
            )
        })
        .await
    }

    async fn scan_schedules(&self, after: Option<&str>, limit: usize) -> Result<Vec<Schedule>> {
        let after = after.unwrap_or("").to_string();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            records(
                conn,
                "SELECT record FROM schedules WHERE name > ?1 ORDER BY name LIMIT ?2",
                params![after, limit],
            )
        })
        .await
    }

    async fn update_schedule(&self, mut schedule: Schedule) -> Result<Schedule> {
        storable_schedule(&schedule)?;
        let expected = schedule.version;
        schedule.version += 1;
        let text = serde_json::to_string(&schedule).map_err(backend)?;
        self.inner
            .writer
            .write(move |conn| {
                let changed = conn
                    .prepare_cached(
                        "UPDATE schedules SET next_fire_time = ?2, version = ?3, record = ?4 \
                         WHERE name = ?1 AND version = ?5",
                    )
                    .and_then(|mut s| {
                        s.execute(params![
                            schedule.name,
                            next_fire(&schedule),
                            schedule.version,
                            text,
                            expected
                        ])
                    })
                    .map_err(backend)?;
                if changed == 1 {
                    return Ok(schedule);
                }
                let exists: bool = conn
                    .prepare_cached("SELECT EXISTS (SELECT 1 FROM schedules WHERE name = ?1)")
                    .and_then(|mut s| s.query_row([&schedule.name], |r| r.get(0)))
                    .map_err(backend)?;
                Err(if exists {
                    Error::Conflict
                } else {
                    Error::NotFound
                })
            })
            .await
    }

    async fn delete_schedule(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.inner
            .writer
            .write(move |conn| {
                conn.prepare_cached("DELETE FROM schedules WHERE name = ?1")
                    .and_then(|mut s| s.execute([name]))
                    .map(|n| n == 1)
                    .map_err(backend)
            })
            .await
    }

    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(move |conn| {
            records(
                conn,
                "SELECT record FROM schedules WHERE next_fire_time IS NOT NULL \
                 AND next_fire_time <= ?1 ORDER BY next_fire_time, name LIMIT ?2",
                params![now.millis(), limit],
            )
        })
        .await
    }

    async fn next_fire_time(&self) -> Result<Option<Timestamp>> {
        self.read(|conn| {
            conn.prepare_cached(
                "SELECT min(next_fire_time) FROM schedules WHERE next_fire_time IS NOT NULL",
            )
            .and_then(|mut s| s.query_row([], |r| r.get::<_, Option<i64>>(0)))
            .map(|t| t.map(Timestamp))
            .map_err(backend)
        })
        .await
    }
}
