//! Inserts and compare-and-set updates, gathered into one statement each.
//!
//! A write that runs its own transaction pays round trips for every statement and the
//! commit, and inserts into one project take turns across servers (for the queue limit):
//! under load, that caps a project at a few hundred submits per second. So writes go through
//! queues drained by writer tasks: each takes what has queued (up to `MAX_BATCH`) and writes
//! it with one statement, which commits on its own; every write is answered once that has
//! committed. Each write keeps its own outcome: a full queue, a taken name or a stale
//! version fails that write alone. A database error fails the whole statement; its writes are
//! then retried one by one, so one bad write cannot fail the others.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use deadpool_postgres::{GenericClient, Pool};
use longrun_store::{Error, Inserted, NewOperation, Result};
use longrun_types::Operation;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::{Columns, backend, missing_or_conflict, parse_record, pg};

/// Writes in one statement at most.
const MAX_BATCH: usize = 256;
/// Update statements in flight at once per server. Inserts have one: a project's inserts take
/// turns on its lock anyway, so a second insert statement would only wait, and make both
/// batches smaller.
const UPDATE_WRITERS: usize = 4;

type Job<W> = (W, oneshot::Sender<Result<<W as Batch>::Output>>);

/// A kind of write that is done in batches.
pub trait Batch: Sized + Send + Sync + 'static {
    type Output: Send + 'static;

    /// Writes `batch` in one statement: the outcome of each write, in order.
    fn write(
        client: &impl GenericClient,
        batch: &[Self],
    ) -> impl Future<Output = Result<Vec<Result<Self::Output>>>> + Send;
}

/// The queues of the writer tasks, which stop once every `Writers` is gone.
#[derive(Clone)]
pub struct Writers {
    inserts: mpsc::Sender<Job<NewOperation>>,
    updates: mpsc::Sender<Job<Operation>>,
}

impl Writers {
    pub fn start(pool: &Pool) -> Writers {
        Writers {
            inserts: queue(pool, 1),
            updates: queue(pool, UPDATE_WRITERS),
        }
    }

    pub async fn insert(&self, new: NewOperation) -> Result<Inserted> {
        send(&self.inserts, new).await
    }

    pub async fn update(&self, op: Operation) -> Result<Operation> {
        send(&self.updates, op).await
    }
}

async fn send<W: Batch>(queue: &mpsc::Sender<Job<W>>, write: W) -> Result<W::Output> {
    let (reply, outcome) = oneshot::channel();
    let stopped = || Error::Backend("the store's writers have stopped".into());
    queue.send((write, reply)).await.map_err(|_| stopped())?;
    outcome.await.map_err(|_| stopped())?
}

fn queue<W: Batch>(pool: &Pool, writers: usize) -> mpsc::Sender<Job<W>> {
    let (sender, receiver) = mpsc::channel(4 * MAX_BATCH);
    let receiver = Arc::new(Mutex::new(receiver));
    for _ in 0..writers {
        tokio::spawn(writer(pool.clone(), receiver.clone()));
    }
    sender
}

async fn writer<W: Batch>(pool: Pool, queue: Arc<Mutex<mpsc::Receiver<Job<W>>>>) {
    loop {
        let mut jobs = Vec::new();
        if queue.lock().await.recv_many(&mut jobs, MAX_BATCH).await == 0 {
            return;
        }
        let (writes, replies): (Vec<W>, Vec<_>) = jobs.into_iter().unzip();
        match write(&pool, &writes).await {
            Ok(outcomes) => answer(replies, outcomes),
            Err(_) if writes.len() > 1 => {
                for (write1, reply) in writes.chunks(1).zip(replies) {
                    match write(&pool, write1).await {
                        Ok(outcomes) => answer(vec![reply], outcomes),
                        Err(e) => answer(vec![reply], vec![Err(e)]),
                    }
                }
            }
            Err(e) => answer(replies, vec![Err(e)]),
        }
    }
}

async fn write<W: Batch>(pool: &Pool, writes: &[W]) -> Result<Vec<Result<W::Output>>> {
    let client = crate::connection(pool).await?;
    W::write(&client, writes).await
}

fn answer<T>(replies: Vec<oneshot::Sender<Result<T>>>, outcomes: Vec<Result<T>>) {
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        // A caller that has gone away no longer needs its answer.
        let _ = reply.send(outcome);
    }
}

impl Batch for NewOperation {
    type Output = Inserted;

    /// One call of `longrun_insert` (see the schema), which takes each project's lock and
    /// applies the rules of an insert row by row, in the order of the batch.
    async fn write(
        client: &impl GenericClient,
        batch: &[NewOperation],
    ) -> Result<Vec<Result<Inserted>>> {
        let mut rows = Rows::default();
        let mut limits = Vec::with_capacity(batch.len());
        let mut payloads = Vec::with_capacity(batch.len());
        let mut created = Vec::with_capacity(batch.len());
        for new in batch {
            let mut op = new.operation.clone();
            op.version = 1;
            rows.push(&op)?;
            limits.push(i64::try_from(new.max_queued).unwrap_or(i64::MAX));
            payloads.push(serde_json::to_string(&new.payload).map_err(backend)?);
            created.push(op);
        }
        let statement = client
            .prepare_cached(
                "SELECT outcome, existing FROM longrun_insert($1, $2, $3, $4, $5, $6, $7, $8, \
                 $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, \
                 $25, $26, $27, $28)",
            )
            .await
            .map_err(pg)?;
        let mut params = rows.params();
        params.push(&payloads);
        params.push(&limits);
        params.push(&rows.concurrency_key);
        params.push(&rows.retry_of);
        params.push(&rows.schedule_time);
        params.push(&rows.start_timeout);
        params.push(&rows.start_deadline);
        params.push(&rows.schedule);
        params.push(&rows.parent);
        let outcomes = client.query(&statement, &params).await.map_err(pg)?;
        if outcomes.len() != batch.len() {
            return Err(Error::Backend(format!(
                "longrun_insert answered {} of {} inserts",
                outcomes.len(),
                batch.len()
            )));
        }
        outcomes
            .iter()
            .zip(created)
            .zip(batch)
            .map(|((row, op), new)| {
                Ok(match row.get::<_, &str>(0) {
                    "created" => Ok(Inserted::Created(op)),
                    "existing" => Ok(Inserted::Existing(parse_record(row.get(1))?)),
                    "taken" => Err(Error::AlreadyExists(op.name)),
                    "full" => Err(Error::QueueFull {
                        limit: new.max_queued,
                    }),
                    "parent_closed" => Err(Error::ParentClosed(
                        op.parent.clone().unwrap_or_else(|| op.name.clone()),
                    )),
                    other => return Err(Error::Backend(format!("unknown outcome {other}"))),
                })
            })
            .collect()
    }
}

impl Batch for Operation {
    type Output = Operation;

    /// One `UPDATE … FROM unnest(…)`, in name order so that two batches never wait for each
    /// other. An operation changed twice in one batch is written once: the second change is
    /// a conflict (the caller re-reads and decides again).
    async fn write(
        client: &impl GenericClient,
        batch: &[Operation],
    ) -> Result<Vec<Result<Operation>>> {
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by(|&a, &b| batch[a].name.cmp(&batch[b].name));
        let mut seen = HashSet::new();
        let mut rows = Rows::default();
        let mut expected = Vec::new();
        let mut updated: Vec<Option<Operation>> = vec![None; batch.len()];
        for &i in &order {
            if !seen.insert(batch[i].name.as_str()) {
                continue;
            }
            let mut op = batch[i].clone();
            expected.push(op.version);
            op.version += 1;
            rows.push(&op)?;
            updated[i] = Some(op);
        }
        let statement = client
            .prepare_cached(
                "UPDATE operations AS o SET project = u.project, state = u.state, \
                 op_type = u.op_type, description = u.description, priority = u.priority, \
                 attempt = u.attempt, create_time = u.create_time, update_time = u.update_time, \
                 start_time = u.start_time, end_time = u.end_time, error_code = u.error_code, \
                 request_id = u.request_id, lease_expire = u.lease_expire, \
                 deadline = u.deadline, cancel_time = u.cancel_time, version = u.version, \
                 record = u.record, has_children = u.has_children \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                 $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::int8[], \
                 $12::int8[], $13::text[], $14::int8[], $15::int8[], $16::int8[], $17::int8[], \
                 $18::text[], $19::bool[], $20::int8[]) AS u(name, project, state, op_type, \
                 description, priority, attempt, create_time, update_time, start_time, end_time, \
                 error_code, request_id, lease_expire, deadline, cancel_time, version, record, \
                 has_children, expected) \
                 WHERE o.name = u.name AND o.version = u.expected RETURNING o.name",
            )
            .await
            .map_err(pg)?;
        let mut params = rows.params();
        params.push(&expected);
        let written: HashSet<String> = client
            .query(&statement, &params)
            .await
            .map_err(pg)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let mut results = Vec::with_capacity(batch.len());
        for (op, updated) in batch.iter().zip(updated) {
            results.push(match updated {
                Some(op) if written.contains(op.name.as_str()) => Ok(op),
                Some(_) => Err(missing_or_conflict(client, &op.name).await?),
                None => Err(Error::Conflict),
            });
        }
        Ok(results)
    }
}

/// Operations as columns, the parameters of one statement whatever the number of rows (so
/// that it is prepared once), in the table's column order.
#[derive(Default)]
struct Rows {
    name: Vec<String>,
    project: Vec<String>,
    state: Vec<&'static str>,
    op_type: Vec<String>,
    description: Vec<String>,
    priority: Vec<i64>,
    attempt: Vec<i64>,
    create_time: Vec<i64>,
    update_time: Vec<i64>,
    start_time: Vec<Option<i64>>,
    end_time: Vec<Option<i64>>,
    error_code: Vec<Option<i64>>,
    request_id: Vec<Option<String>>,
    lease_expire: Vec<Option<i64>>,
    deadline: Vec<Option<i64>>,
    cancel_time: Vec<Option<i64>>,
    version: Vec<i64>,
    record: Vec<String>,
    has_children: Vec<bool>,
    /// Not among `params`: only inserts write it (and the six below).
    concurrency_key: Vec<Option<String>>,
    retry_of: Vec<Option<String>>,
    schedule_time: Vec<Option<i64>>,
    start_timeout: Vec<Option<i64>>,
    start_deadline: Vec<Option<i64>>,
    schedule: Vec<Option<String>>,
    parent: Vec<String>,
}

impl Rows {
    fn push(&mut self, op: &Operation) -> Result<()> {
        let c = Columns::of(op)?;
        self.name.push(c.name);
        self.project.push(c.project);
        self.state.push(c.state);
        self.op_type.push(c.op_type);
        self.description.push(c.description);
        self.priority.push(c.priority);
        self.attempt.push(c.attempt);
        self.create_time.push(c.create_time);
        self.update_time.push(c.update_time);
        self.start_time.push(c.start_time);
        self.end_time.push(c.end_time);
        self.error_code.push(c.error_code);
        self.request_id.push(c.request_id);
        self.lease_expire.push(c.lease_expire);
        self.deadline.push(c.deadline);
        self.cancel_time.push(c.cancel_time);
        self.version.push(c.version);
        self.record.push(c.record);
        self.has_children.push(c.has_children);
        self.concurrency_key.push(c.concurrency_key);
        self.retry_of.push(c.retry_of);
        self.schedule_time.push(c.schedule_time);
        self.start_timeout.push(c.start_timeout);
        self.start_deadline.push(c.start_deadline);
        self.schedule.push(c.schedule);
        self.parent.push(c.parent);
        Ok(())
    }

    fn params(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        vec![
            &self.name,
            &self.project,
            &self.state,
            &self.op_type,
            &self.description,
            &self.priority,
            &self.attempt,
            &self.create_time,
            &self.update_time,
            &self.start_time,
            &self.end_time,
            &self.error_code,
            &self.request_id,
            &self.lease_expire,
            &self.deadline,
            &self.cancel_time,
            &self.version,
            &self.record,
            &self.has_children,
        ]
    }
}
