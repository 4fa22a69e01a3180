//! Schedules (docs/schedules.md): records kept whole, read by name, listed by project in
//! name order, written with a compare-and-set on their version, and found by their next
//! fire time.

use crate::{Error, Result, storable_text};
use async_trait::async_trait;
use longrun_types::{Schedule, Timestamp, limits};

/// Schedules, kept in the store so that every server sharing it fires them.
#[async_trait]
pub trait Schedules: Send + Sync + 'static {
    /// Adds a schedule with version 1 and returns it as stored; `None` (and nothing
    /// written) when the name is taken.
    async fn create_schedule(&self, schedule: Schedule) -> Result<Option<Schedule>>;

    async fn schedule(&self, name: &str) -> Result<Option<Schedule>>;

    /// Up to `limit` schedules of `project` in name order (bytewise) after `after`.
    async fn schedules(
        &self,
        project: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Schedule>>;

    /// Up to `limit` schedules of every project in name order (bytewise) after `after`, for
    /// copying a store.
    async fn scan_schedules(&self, after: Option<&str>, limit: usize) -> Result<Vec<Schedule>>;

    /// Compare-and-set: writes `schedule` if the stored version equals
    /// `schedule.version`, and returns it as stored (version + 1). `NotFound` without
    /// it, `Conflict` when another write came first.
    async fn update_schedule(&self, schedule: Schedule) -> Result<Schedule>;

    /// Removes a schedule; false when there is none.
    async fn delete_schedule(&self, name: &str) -> Result<bool>;

    /// Up to `limit` schedules whose next fire time is at or before `now` (paused ones
    /// have none), earliest first.
    async fn due_schedules(&self, now: Timestamp, limit: usize) -> Result<Vec<Schedule>>;

    /// The earliest next fire time of any schedule, for the scheduler's sleep.
    async fn next_fire_time(&self) -> Result<Option<Timestamp>>;
}

/// Checks what a backend indexes of a schedule: its name (U+0000 and length).
pub fn storable_schedule(schedule: &Schedule) -> Result<()> {
    storable_text("name", &schedule.name)?;
    if Schedule::split_name(&schedule.name).is_none() {
        return Err(Error::InvalidArgument(format!(
            "`{}` is not a schedule name",
            schedule.name
        )));
    }
    limits::check("name", &schedule.name, limits::OPERATION_NAME).map_err(Error::TooLong)
}
