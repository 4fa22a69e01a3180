//! Queues (docs/queues.md): a project's operations of one type. Their counts are kept by
//! the store as operations change, so that reading them scans no operations; their pauses
//! are rows that every lease reads.

use crate::Result;
use async_trait::async_trait;
use longrun_types::{State, Timestamp};

/// The type that names every type of a project in a pause (`projects/p/queues/-`).
pub const EVERY_TYPE: &str = "-";

/// A queue's counts, exact as of the read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueCounts {
    /// Its PENDING operations, scheduled ones included.
    pub pending: u64,
    /// Its RUNNING and CANCELLING operations: the ones a worker holds.
    pub running: u64,
    /// When the one of its PENDING operations that has waited longest became leasable: its
    /// `createTime`, or its `scheduleTime` when it has one. Operations whose `scheduleTime`
    /// is still ahead do not count; `None` when no PENDING operation is leasable.
    pub oldest_pending: Option<Timestamp>,
}

/// One queue's counts, for a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStat {
    pub project: String,
    pub op_type: String,
    pub counts: QueueCounts,
}

/// Queue counts and pauses, kept in the store so that every server sharing it sees them.
#[async_trait]
pub trait Queues: Send + Sync + 'static {
    /// Pauses (true) or resumes (false) the queue of `op_type` in `project`; `op_type`
    /// [`EVERY_TYPE`] pauses every type of the project, and resuming it removes every pause
    /// of the project. Idempotent. Once this returns, no lease on any server sharing the
    /// store takes an operation of a paused queue; a resume wakes the lease requests that
    /// wait on every server.
    async fn set_queue_paused(&self, project: &str, op_type: &str, paused: bool) -> Result<()>;

    /// The paused queues as (project, type) in that order (bytewise), of `project` or of
    /// every project; [`EVERY_TYPE`] among the types of a project paused whole.
    async fn paused_queues(&self, project: Option<&str>) -> Result<Vec<(String, String)>>;

    /// The counts of the queue of `op_type` in `project` at `now` (which decides the
    /// scheduled operations that count for `oldest_pending`); all zero for a queue that has
    /// none.
    async fn queue_counts(
        &self,
        project: &str,
        op_type: &str,
        now: Timestamp,
    ) -> Result<QueueCounts>;

    /// Every queue with PENDING or RUNNING work, of `project` or of every project, by
    /// (project, type) bytewise, with its counts at `now`.
    async fn queues(&self, project: Option<&str>, now: Timestamp) -> Result<Vec<QueueStat>>;

    /// How many operations each (project, type) holds in each state, every stored one
    /// counted (done ones until retention removes them), kept by the store as operations
    /// change: the read scans no operations. Only counts above zero.
    async fn state_counts(&self) -> Result<Vec<StateCount>>;
}

/// One (project, type, state)'s count of [`Queues::state_counts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateCount {
    pub project: String,
    pub op_type: String,
    pub state: State,
    pub count: u64,
}
