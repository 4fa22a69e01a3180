//! Schedules (docs/schedules.md): the `schedules` table, each record kept whole with the
//! columns its reads need (project, next fire time, version). An update is one conditional
//! `UPDATE` on the version, so of several servers firing one schedule exactly one advances it.

use crate::{PostgresStore, backend, pg};
use async_trait::async_trait;
use longrun_store::{Error, Result, Schedules, storable_schedule};
use longrun_types::{Schedule, Timestamp};
use tokio_postgres::Row;

fn record(row: &Row) -> Result<Schedule> {
    serde_json::from_str(&row.get::<_, String>(0))
        .map_err(|e| Error::Backend(format!("corrupt schedule: {e}")))
}

fn next_fire(s: &Schedule) -> Option<i64> {
    s.next_fire_time.map(Timestamp::millis)
}

#[async_trait]
impl Schedules for PostgresStore {
    async fn create_schedule(&self, mut schedule: Schedule) -> Result<Option<Schedule>> {
        storable_schedule(&schedule)?;
        schedule.version = 1;
        let text = serde_json::to_string(&schedule).map_err(backend)?;
        let client = self.client().await?;
        let added = client
            .execute(
                "INSERT INTO schedules (name, project, next_fire_time, version, record) \
                 VALUES ($1, $2, $3, 1, $4) ON CONFLICT (name) DO NOTHING",
                &[
                    &schedule.name,
                    &schedule.project(),
                    &next_fire(&schedule),
                    &text,
                ],
            )
            .await
            .map_err(pg)?;
        Ok((added == 1).then_some(schedule))
    }

    async fn schedule(&self, name: &str) -> Result<Option<Schedule>> {
        let client = self.client().await?;
        client
            .query_opt("SELECT record FROM schedules WHERE name = $1", &[&name])
            .await
            .map_err(pg)?
            .as_ref()
            .map(record)
            .transpose()
    }

    async fn schedules(
        &self,
        project: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Schedule>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        client
            .query(
                "SELECT record FROM schedules WHERE project = $1 AND name > $2 \
                 ORDER BY name LIMIT $3",
                &[&project, &after.unwrap_or(""), &limit],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(record)
            .collect()
    }

    async fn scan_schedules(&self, after: Option<&str>, limit: usize) -> Result<Vec<Schedule>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        client
            .query(
                "SELECT record FROM schedules WHERE name > $1 ORDER BY name LIMIT $2",
                &[&after.unwrap_or(""), &limit],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(record)
            .collect()
    }

    async fn update_schedule(&self, mut schedule: Schedule) -> Result<Schedule> {
        storable_schedule(&schedule)?;
        let expected = schedule.version;
        schedule.version += 1;
        let text = serde_json::to_string(&schedule).map_err(backend)?;
        let client = self.client().await?;
        let changed = client
            .execute(
                "UPDATE schedules SET next_fire_time = $2, version = $3, record = $4 \
                 WHERE name = $1 AND version = $5",
                &[
                    &schedule.name,
                    &next_fire(&schedule),
                    &schedule.version,
                    &text,
                    &expected,
                ],
            )
            .await
            .map_err(pg)?;
        if changed == 1 {
            return Ok(schedule);
        }
        let exists = client
            .query_opt("SELECT 1 FROM schedules WHERE name = $1", &[&schedule.name])
            .await
            .map_err(pg)?
            .is_some();
        Err(if exists {
            Error::Conflict
        } else {
            Error::NotFound
        })
    }

    async fn delete_schedule(&self, name: &str) -> Result<bool> {
        let client = self.client().await?;
        let n = client
            .execute("DELETE FROM schedules WHERE name = $1", &[&name])
            .await
            .map_err(pg)?;
        Ok(n == 1)
    }

    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        client
            .query(
                "SELECT record FROM schedules WHERE next_fire_time IS NOT NULL \
                 AND next_fire_time <= $1 ORDER BY next_fire_time, name LIMIT $2",
                &[&now.millis(), &limit],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(record)
            .collect()
    }

    async fn next_fire_time(&self) -> Result<Option<Timestamp>> {
        let client = self.client().await?;
        let row = client
            .query_one(
                "SELECT min(next_fire_time) FROM schedules WHERE next_fire_time IS NOT NULL",
                &[],
            )
            .await
            .map_err(pg)?;
        Ok(row.get::<_, Option<i64>>(0).map(Timestamp))
    }
}
