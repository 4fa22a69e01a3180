//! The worker loop: lease while there are free slots, run each operation with its heartbeat,
//! complete it; on shutdown stop leasing, let running handlers finish within a grace, then
//! stop them and release what is left: the operations go back to the queue without spending
//! an attempt, and nothing is recorded as an error.

use crate::{Assignment, Backend, BackendError, Context};
use longrun_types::operation::Status;
use serde_json::Value;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

type Outcome = Result<Value, Status>;
type Handler = Arc<dyn Fn(Context) -> Pin<Box<dyn Future<Output = Outcome> + Send>> + Send + Sync>;

pub struct Worker {
    id: String,
    handlers: HashMap<String, Handler>,
    concurrency: usize,
    lease_duration: Duration,
    lease_poll: Duration,
    shutdown_grace: Duration,
}

const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl Worker {
    /// A worker named `id` (shown as the lease holder), running one operation at a time.
    pub fn new(id: &str) -> Worker {
        Worker {
            id: id.to_string(),
            handlers: HashMap::new(),
            concurrency: 1,
            lease_duration: Duration::from_secs(60),
            lease_poll: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(30),
        }
    }

    /// Runs `handler` for operations of `op_type`. The handler returns the response, or a
    /// status: code 1 acknowledges a cancellation, code 14 asks for a retry.
    pub fn handle<F, Fut>(mut self, op_type: &str, handler: F) -> Worker
    where
        F: Fn(Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Outcome> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |ctx| Box::pin(handler(ctx)));
        self.handlers.insert(op_type.to_string(), handler);
        self
    }

    /// How many operations run at once.
    pub fn concurrency(mut self, n: usize) -> Worker {
        self.concurrency = n.clamp(1, 100);
        self
    }

    /// How long each lease (and each heartbeat's extension) lasts.
    pub fn lease_duration(mut self, d: Duration) -> Worker {
        self.lease_duration = d;
        self
    }

    /// How long one lease request waits for work (default 5 s). A shutdown waits for the
    /// request in flight; over gRPC the server is told to end that wait first
    /// (`StopLeasing`), over REST it bounds how long stopping takes.
    pub fn lease_poll(mut self, d: Duration) -> Worker {
        self.lease_poll = d;
        self
    }

    /// On shutdown, how long running handlers may take before their leases are released.
    pub fn shutdown_grace(mut self, d: Duration) -> Worker {
        self.shutdown_grace = d;
        self
    }

    /// Runs until `shutdown` resolves, then drains as described above.
    pub async fn run<B: Backend>(self, backend: Arc<B>, shutdown: impl Future<Output = ()>) {
        let types: Vec<String> = self.handlers.keys().cloned().collect();
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let (stop, stopping) = watch::channel(false);
        let mut running = JoinSet::new();
        let mut backoff = Duration::from_millis(50);
        tokio::pin!(shutdown);
        let mut shutting_down = false;
        while !shutting_down {
            while running.try_join_next().is_some() {}
            let first = tokio::select! {
                _ = &mut shutdown => break,
                permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            };
            let mut permits = vec![first];
            while let Ok(permit) = slots.clone().try_acquire_owned() {
                permits.push(permit);
            }
            // A lease request in flight is awaited even when shutdown comes (dropping it
            // could leave operations leased to nobody until their lease lapsed), once the
            // server is told to end its wait.
            let lease = backend.lease(
                &self.id,
                &types,
                permits.len(),
                self.lease_poll,
                self.lease_duration,
            );
            tokio::pin!(lease);
            let leased = tokio::select! {
                leased = &mut lease => leased,
                _ = &mut shutdown => {
                    shutting_down = true;
                    let (leased, ()) = tokio::join!(lease, backend.stop_leasing());
                    leased
                }
            };
            let assignments = match leased {
                Ok(assignments) => {
                    backoff = Duration::from_millis(50);
                    assignments
                }
                Err(e) => {
                    tracing::warn!(worker = %self.id, error = ?e, "lease failed; retrying");
                    if !shutting_down {
                        tokio::select! {
                            _ = &mut shutdown => break,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            for (assignment, permit) in assignments.into_iter().zip(permits) {
                let Some(handler) = self.handlers.get(&assignment.op_type).cloned() else {
                    continue;
                };
                let backend = backend.clone();
                let stopping = stopping.clone();
                let (lease, grace) = (self.lease_duration, self.shutdown_grace);
                running.spawn(async move {
                    execute(
                        backend,
                        Arc::new(assignment),
                        handler,
                        lease,
                        stopping,
                        grace,
                    )
                    .await;
                    drop(permit);
                });
            }
        }
        let _ = stop.send(true);
        while running.join_next().await.is_some() {}
    }
}

/// Runs one operation: the handler, its heartbeat, and the completion.
async fn execute<B: Backend>(
    backend: Arc<B>,
    assignment: Arc<Assignment>,
    handler: Handler,
    lease: Duration,
    mut stopping: watch::Receiver<bool>,
    grace: Duration,
) {
    let (cancel, cancelled) = watch::channel(false);
    let ctx = Context::new(assignment.clone(), cancelled, backend.clone());
    let beating = tokio::spawn(heartbeat(backend.clone(), ctx.clone(), cancel, lease));
    // Boxed so that it can be dropped (the handler stopped) before its lease is released.
    let mut run = handler(ctx.clone());
    let outcome = tokio::select! {
        outcome = &mut run => Some(outcome),
        _ = async {
            let _ = stopping.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => None,
    };
    drop(run);
    beating.abort();
    let lost = beating.await.ok() == Some(true);
    if lost {
        tracing::info!(operation = %assignment.name, "lease lost; the result is dropped");
        return;
    }
    let Some(result) = outcome else {
        tracing::info!(operation = %assignment.name, "shutting down; the operation is released");
        retry("release", &assignment, || backend.release(&assignment)).await;
        return;
    };
    let last = ctx.take_report();
    if last.progress.is_some()
        || last.stages.is_some()
        || last.destination_uris.is_some()
        || last.batch_eecu_usage_seconds.is_some()
    {
        let _ = backend.heartbeat(&assignment, last, Duration::ZERO).await;
    }
    retry("completion", &assignment, || {
        backend.complete(&assignment, result.clone())
    })
    .await;
}

/// Makes a final report, retrying what may pass (five tries, backing off from 100 ms); a
/// lost lease ends it (the report no longer matters).
async fn retry<F, Fut>(what: &str, assignment: &Assignment, mut report: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), BackendError>>,
{
    for attempt in 0..5 {
        match report().await {
            Ok(()) | Err(BackendError::LeaseLost) => return,
            Err(e) => {
                tracing::warn!(operation = %assignment.name, error = %e, attempt, "{what} failed; retrying");
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
        }
    }
}

/// Keeps the lease alive and turns a requested cancel into the context's signal. Returns
/// true when the lease was lost.
async fn heartbeat<B: Backend>(
    backend: Arc<B>,
    ctx: Context,
    cancel: watch::Sender<bool>,
    lease: Duration,
) -> bool {
    // Each beat waits for a cancel for a third of the lease, so the lease is renewed well
    // before it lapses and a cancel is seen the moment it happens.
    let wait = lease / 3;
    let mut backoff = Duration::from_millis(50);
    loop {
        let waiting = if *cancel.borrow() {
            Duration::ZERO
        } else {
            wait
        };
        match backend
            .heartbeat(ctx.assignment(), ctx.take_report(), waiting)
            .await
        {
            Ok(requested) => {
                backoff = Duration::from_millis(50);
                if requested && !*cancel.borrow() {
                    let _ = cancel.send(true);
                }
                if *cancel.borrow() {
                    tokio::time::sleep(wait).await;
                }
            }
            Err(BackendError::LeaseLost) => {
                let _ = cancel.send(true);
                return true;
            }
            Err(e) => {
                tracing::warn!(operation = %ctx.name(), error = %e, "heartbeat failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}
