//! Queues (docs/queues.md): a project's operations of one type, `projects/{p}/queues/{type}`,
//! with their exact counts and their pause; `-` names every type of the project. The counts
//! and the pauses are the store's (`longrun_store::Queues`); a lease on any server sharing
//! it honours a pause once [`Engine::pause_queue`] returns.

use crate::{Engine, Error, Result};
use longrun_store::{EVERY_TYPE, QueueCounts, QueueStat};
use longrun_types::{Project, limits};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a project's pauses, as read, are used for why work waits on a store other
/// servers share (a pause made through another server shows this much later at most). On a
/// store of its own, every pause goes through this engine, which forgets what it read.
const PAUSES_SHARED_TTL: Duration = Duration::from_secs(1);

/// Each project's paused queues as last read, so that why work waits reads them once per
/// project rather than once per operation served. Leasing never uses it: every lease reads
/// the pauses in its own transaction.
#[derive(Default)]
pub(crate) struct Pauses(Mutex<Read>);

/// What [`Pauses`] holds: when each project's pauses were read and what they were, and how
/// many pauses and resumes this engine made, so that a read that raced one is not kept.
#[derive(Default)]
struct Read {
    changes: u64,
    projects: HashMap<String, (Instant, Vec<String>)>,
}

/// One queue as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    pub project: Project,
    /// Its operation type, or `-` for every type of the project.
    pub op_type: String,
    /// Paused itself, or with every type of its project.
    pub paused: bool,
    /// For `-`, the sums over the project's queues (and the oldest of them).
    pub counts: QueueCounts,
}

impl Queue {
    /// `projects/{p}/queues/{type}`.
    pub fn name(&self) -> String {
        format!("projects/{}/queues/{}", self.project, self.op_type)
    }
}

/// The counts of a project's queues together (`-`): their sums, and the oldest of their
/// oldest PENDING times.
fn total(queues: &[QueueStat]) -> QueueCounts {
    queues
        .iter()
        .fold(QueueCounts::default(), |sum, q| QueueCounts {
            pending: sum.pending + q.counts.pending,
            running: sum.running + q.counts.running,
            oldest_pending: match (sum.oldest_pending, q.counts.oldest_pending) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        })
}

/// Checks a queue's type as a path names it: `-`, or an operation type.
fn check_type(op_type: &str) -> Result<()> {
    if op_type.is_empty() {
        return Err(Error::invalid("INVALID_QUEUE", "the queue's type is empty"));
    }
    limits::check("type", op_type, limits::TYPE)?;
    Ok(())
}

impl Engine {
    /// The queue of `op_type` in `project` (`-`: the project's totals). A queue that has
    /// never had work is there, empty. Errors: `InvalidArgument` for an empty type,
    /// `TooLong` past the type's limit.
    pub async fn queue(&self, project: &Project, op_type: &str) -> Result<Queue> {
        check_type(op_type)?;
        let store = &self.inner.store;
        let pauses = store.paused_queues(Some(project.as_str())).await?;
        let paused = pauses.iter().any(|(_, t)| t == EVERY_TYPE || t == op_type);
        let counts = if op_type == EVERY_TYPE {
            total(&store.queues(Some(project.as_str()), self.now()).await?)
        } else {
            store
                .queue_counts(project.as_str(), op_type, self.now())
                .await?
        };
        Ok(Queue {
            project: project.clone(),
            op_type: op_type.to_string(),
            paused,
            counts,
        })
    }

    /// The project's queues with PENDING or RUNNING work or a pause of their own, by type
    /// (bytewise); `-` first when the whole project is paused.
    pub async fn queues(&self, project: &Project) -> Result<Vec<Queue>> {
        let store = &self.inner.store;
        let pauses: Vec<String> = store
            .paused_queues(Some(project.as_str()))
            .await?
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        let all_paused = pauses.iter().any(|t| t == EVERY_TYPE);
        let mut queues: std::collections::BTreeMap<String, Queue> = pauses
            .iter()
            .map(|t| {
                let queue = Queue {
                    project: project.clone(),
                    op_type: t.clone(),
                    paused: true,
                    counts: QueueCounts::default(),
                };
                (t.clone(), queue)
            })
            .collect();
        let with_work = store.queues(Some(project.as_str()), self.now()).await?;
        if let Some(every) = queues.get_mut(EVERY_TYPE) {
            every.counts = total(&with_work);
        }
        for q in with_work {
            let paused = all_paused || pauses.contains(&q.op_type);
            queues.insert(
                q.op_type.clone(),
                Queue {
                    project: project.clone(),
                    op_type: q.op_type,
                    paused,
                    counts: q.counts,
                },
            );
        }
        Ok(queues.into_values().collect())
    }

    /// Pauses (true) or resumes (false) the queue of `op_type` in `project` and returns it.
    /// Idempotent. Once it returns, no lease on any server sharing the store takes an
    /// operation of a paused queue; a resume wakes the lease requests waiting on every
    /// server. Resuming `-` resumes every queue of the project. Errors: those of
    /// [`Engine::queue`], and `ProjectPaused` when resuming one type while the whole
    /// project is paused.
    pub async fn pause_queue(
        &self,
        project: &Project,
        op_type: &str,
        paused: bool,
    ) -> Result<Queue> {
        check_type(op_type)?;
        let store = &self.inner.store;
        if !paused && op_type != EVERY_TYPE {
            let pauses = store.paused_queues(Some(project.as_str())).await?;
            if pauses.iter().any(|(_, t)| t == EVERY_TYPE) {
                return Err(Error::ProjectPaused(project.to_string()));
            }
        }
        store
            .set_queue_paused(project.as_str(), op_type, paused)
            .await?;
        {
            let mut read = self.inner.pauses.0.lock().expect("pauses lock");
            read.changes += 1;
            read.projects.remove(project.as_str());
        }
        if !paused {
            self.inner.work.notify_waiters();
        }
        tracing::info!(
            queue = %format!("projects/{project}/queues/{op_type}"),
            paused,
            "queue {}", if paused { "paused" } else { "resumed" }
        );
        self.queue(project, op_type).await
    }
}

impl Engine {
    /// The paused queue types of `project` (`-` among them when it is paused whole), from
    /// [`Pauses`] when fresh enough, else read from the store.
    pub(crate) async fn paused_types(&self, project: &str) -> Result<Vec<String>> {
        let fresh = |at: Instant| !self.inner.shared || at.elapsed() < PAUSES_SHARED_TTL;
        let changes = {
            let read = self.inner.pauses.0.lock().expect("pauses lock");
            if let Some((at, types)) = read.projects.get(project)
                && fresh(*at)
            {
                return Ok(types.clone());
            }
            read.changes
        };
        let types: Vec<String> = self
            .inner
            .store
            .paused_queues(Some(project))
            .await?
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        let mut read = self.inner.pauses.0.lock().expect("pauses lock");
        if read.changes == changes {
            read.projects
                .insert(project.to_string(), (Instant::now(), types.clone()));
        }
        Ok(types)
    }
}
