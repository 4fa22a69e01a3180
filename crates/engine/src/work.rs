//! The worker side of the engine: leases, heartbeats (with the wait for a cancellation),
//! completions with fencing by lease id, and the sweep of lapsed leases, cancel graces and
//! timeouts (docs/operations.md#cancel, docs/workers.md).

use crate::{CANCELLED_BY_USER, Change, Engine, Error, Result, Write};
use longrun_store::LeaseQuery;
use longrun_types::limits;
use longrun_types::operation::{Lease, Notification, Outcome, Stage, Status};
use longrun_types::{Code, Event, Name, Operation, State, Timestamp, Transition};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// The error message of an operation that did not start within its `startTimeout`
/// (docs/operations.md#delayed-start).
pub const NOT_STARTED_IN_TIME: &str = "not started within startTimeout";

/// Bounds of lease requests (docs/choices.md#leases).
pub const MAX_LEASE_WAIT: Duration = Duration::from_secs(60);
pub const MIN_LEASE_DURATION: Duration = Duration::from_secs(1);
pub const MAX_LEASE_DURATION: Duration = Duration::from_secs(600);
pub const MAX_OPERATIONS_PER_LEASE: usize = 100;

#[derive(Debug, Clone)]
pub struct LeaseRequest {
    pub worker: String,
    pub types: Vec<String>,
    pub max_operations: usize,
    /// How long to wait for work when there is none (capped at a minute).
    pub wait: Duration,
    pub lease_duration: Duration,
    /// Only operations of these projects (`None`: of every project): where the worker's
    /// principal may execute work.
    pub projects: Option<Vec<String>>,
}

/// What a heartbeat reports; absent fields are left as they are.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub progress: Option<f64>,
    pub stages: Option<Vec<Stage>>,
    pub batch_eecu_usage_seconds: Option<f64>,
    pub notifications: Option<Vec<Notification>>,
    pub destination_uris: Option<Vec<String>>,
}

/// A heartbeat's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Beat {
    pub cancel_requested: bool,
    pub lease_expire_time: Timestamp,
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The response as kept: an `Any` in JSON form (docs/choices.md#responses). Without `@type` an
/// object becomes a `google.protobuf.Struct` and any other value a `google.protobuf.Value`.
/// (The API checks what workers send before it gets here; built-in executors' responses
/// are plain objects.)
fn response_any(response: serde_json::Value) -> serde_json::Value {
    let protobuf = |name: &str| format!("type.googleapis.com/google.protobuf.{name}");
    match response {
        serde_json::Value::Object(ref o) if o.get("@type").is_some_and(|t| t.is_string()) => {
            response
        }
        object @ serde_json::Value::Object(_) => {
            serde_json::json!({"@type": protobuf("Struct"), "value": object})
        }
        other => serde_json::json!({"@type": protobuf("Value"), "value": other}),
    }
}

impl Engine {
    /// Leases queued operations of the requested types, waiting up to `wait` for some.
    pub async fn lease(
        &self,
        request: LeaseRequest,
    ) -> Result<Vec<(Operation, serde_json::Value)>> {
        self.lease_until(request, std::future::pending()).await
    }

    /// [`Engine::lease`], whose wait for work also ends when `stop` resolves (a worker
    /// stopping: the gRPC `Work` stream's `stop_leasing`). Only the wait ends: a lease being
    /// written finishes and is answered, so no operation is leased to a caller that never
    /// hears of it.
    #[tracing::instrument(
        name = "engine.lease",
        skip_all,
        fields(
            longrun.worker = request.worker.as_str(),
            longrun.operation.types = %request.types.join(","),
            longrun.leased = tracing::field::Empty,
        )
    )]
    pub async fn lease_until(
        &self,
        request: LeaseRequest,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<Vec<(Operation, serde_json::Value)>> {
        let invalid = |m: String| Error::invalid("INVALID_LEASE_REQUEST", m);
        if request.types.is_empty() || request.types.iter().any(|t| t.is_empty()) {
            return Err(invalid(
                "types must name at least one operation type".into(),
            ));
        }
        if !(1..=MAX_OPERATIONS_PER_LEASE).contains(&request.max_operations) {
            return Err(invalid(format!(
                "maxOperations must be 1..{MAX_OPERATIONS_PER_LEASE}"
            )));
        }
        if !(MIN_LEASE_DURATION..=MAX_LEASE_DURATION).contains(&request.lease_duration) {
            return Err(invalid("leaseDuration must be between 1s and 600s".into()));
        }
        if request.worker.is_empty() {
            return Err(invalid("the worker id is empty".into()));
        }
        limits::check("worker", &request.worker, limits::WORKER_ID)?;
        for (i, t) in request.types.iter().enumerate() {
            limits::check(&format!("types[{i}]"), t, limits::TYPE)?;
        }
        let _asking = self.inner.demand.asking(&request.types);
        self.inner.options.observer.lease_requested(&request.types);
        let deadline = tokio::time::Instant::now() + request.wait.min(MAX_LEASE_WAIT);
        let duration_ms = request.lease_duration.as_millis() as i64;
        let mut closing = self.inner.closing.subscribe();
        tokio::pin!(stop);
        let mut stopped = false;
        loop {
            // Registered before the attempt, so work queued during it still wakes us.
            let work = self.inner.work.notified();
            let clock = self.inner.options.clock.clone();
            let worker = request.worker.clone();
            let query = LeaseQuery {
                types: request.types.clone(),
                now: self.now(),
                limit: request.max_operations,
                max_running: self.inner.options.max_running,
                max_exports: self.inner.options.max_exports,
                key_limits: request
                    .types
                    .iter()
                    .map(|t| (t.clone(), self.task_type(t).key_concurrency))
                    .filter(|(_, limit)| *limit > 0)
                    .collect(),
                projects: request.projects.clone(),
                start: Arc::new(move |mut op: Operation| {
                    let now = clock.now();
                    op.apply(Event::Lease, None, now);
                    op.start_time.get_or_insert(now);
                    op.lease = Some(Lease {
                        id: random_id(),
                        worker: worker.clone(),
                        expire_time: now.plus_millis(duration_ms),
                        duration_ms,
                    });
                    op
                }),
            };
            let started = std::time::Instant::now();
            let leased = self
                .inner
                .store
                .lease(query)
                .instrument(crate::write_span(Write::Lease))
                .await?;
            if !leased.is_empty() {
                let observer = &self.inner.options.observer;
                observer.store_write(Write::Lease, started.elapsed());
                for (op, _) in &leased {
                    self.committed(Change::Leased(op.clone()));
                    self.tree_changed(State::Pending, op);
                }
                observer.leases_granted(leased.len());
                for (op, _) in &leased {
                    observer.transition(&op.op_type, State::Pending, op.state);
                }
            }
            if !leased.is_empty()
                || tokio::time::Instant::now() >= deadline
                || *closing.borrow_and_update()
                || stopped
            {
                tracing::Span::current().record("longrun.leased", leased.len() as i64);
                return Ok(leased);
            }
            tokio::select! {
                _ = work => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = closing.changed() => {}
                _ = &mut stop => stopped = true,
                _ = self.recheck() => {}
            }
        }
    }

    fn check_lease(op: &Operation, lease_id: &str, now: Timestamp) -> Result<()> {
        match &op.lease {
            Some(lease)
                if lease.id == lease_id && op.state.is_leased() && lease.expire_time >= now =>
            {
                Ok(())
            }
            _ => Err(Error::LeaseNotHeld {
                name: op.name.clone(),
                lease_id: lease_id.to_string(),
            }),
        }
    }

    /// Records progress and extends the lease. With `wait_for_cancel`, returns early the
    /// moment a cancellation is requested (the wait is capped at half the lease).
    pub async fn heartbeat(
        &self,
        name: &Name,
        lease_id: &str,
        report: Report,
        wait_for_cancel: Option<Duration>,
    ) -> Result<Beat> {
        limits::check("leaseId", lease_id, limits::LEASE_ID)?;
        if report.progress.is_some_and(|p| !(0.0..=1.0).contains(&p)) {
            return Err(Error::invalid(
                "INVALID_PROGRESS",
                "progress must be between 0 and 1",
            ));
        }
        let interest = self.inner.waiters.register(name.as_str());
        let op = self
            .change(name, |op, now| {
                Self::check_lease(op, lease_id, now)?;
                let report = report.clone();
                if let Some(progress) = report.progress {
                    op.progress = progress;
                }
                if let Some(stages) = report.stages {
                    op.stages = stages;
                }
                if let Some(usage) = report.batch_eecu_usage_seconds {
                    op.batch_eecu_usage_seconds = usage;
                }
                if let Some(notifications) = report.notifications {
                    op.notifications = notifications;
                }
                if let Some(uris) = report.destination_uris {
                    op.destination_uris = uris;
                }
                op.update_time = now.max(op.update_time);
                let grace_end = op.cancel.as_ref().map(|c| {
                    c.time
                        .plus_millis(self.task_type(&op.op_type).cancel_grace.as_millis() as i64)
                });
                let lease = op.lease.as_mut().expect("checked above");
                let extended = now.plus_millis(lease.duration_ms);
                lease.expire_time = match grace_end {
                    Some(end) if op.state == State::Cancelling => extended.min(end),
                    _ => extended,
                };
                Ok(true)
            })
            .await?;
        let lease = op.lease.clone().expect("a held lease");
        let beat = |op: &Operation| {
            if op.state == State::Cancelling {
                self.cancel_told(op, None);
            }
            Beat {
                cancel_requested: op.state == State::Cancelling,
                lease_expire_time: lease.expire_time,
            }
        };
        let wait = wait_for_cancel
            .unwrap_or_default()
            .min(Duration::from_millis(lease.duration_ms as u64 / 2));
        if op.state == State::Cancelling || wait.is_zero() {
            return Ok(beat(&op));
        }
        let deadline = tokio::time::Instant::now() + wait;
        let mut closing = self.inner.closing.subscribe();
        loop {
            let woken = interest.notify().notified();
            let read = interest.changes();
            let op = self.load(name).await?;
            Self::check_lease(&op, lease_id, self.now())?;
            if op.state == State::Cancelling || *closing.borrow_and_update() {
                return Ok(beat(&op));
            }
            // Announced before `woken` was made: it will not wake it.
            if self.told_of_announced_cancel(&op) {
                return Ok(Beat {
                    cancel_requested: true,
                    ..beat(&op)
                });
            }
            tokio::select! {
                _ = woken => if interest.changes() == read && self.told_of_announced_cancel(&op) {
                    return Ok(Beat { cancel_requested: true, ..beat(&op) });
                },
                _ = tokio::time::sleep_until(deadline) => return Ok(beat(&op)),
                _ = closing.changed() => {}
                _ = self.recheck() => {}
            }
        }
    }

    /// Whether a cancel call has announced itself for `op`, read RUNNING under the caller's
    /// lease with no change since: the cancel will move it to CANCELLING unless its type
    /// cannot be cancelled (`Waiters::announce_cancel`). When it has, the caller tells the
    /// worker, and the cancel call counts the delivery once it is durable.
    fn told_of_announced_cancel(&self, op: &Operation) -> bool {
        self.task_type(&op.op_type).cancellable
            && self.inner.waiters.tell_announced(op.name.as_str())
    }

    /// Resolves once cancellation of the leased operation is requested (true), or once the
    /// lease is no longer held, or the operation ended (false). Changes nothing: what
    /// keeps the lease alive is the worker's own heartbeats.
    pub async fn cancel_requested(&self, name: &Name, lease_id: &str) -> Result<bool> {
        limits::check("leaseId", lease_id, limits::LEASE_ID)?;
        let interest = self.inner.waiters.register(name.as_str());
        let mut closing = self.inner.closing.subscribe();
        loop {
            let woken = interest.notify().notified();
            let read = interest.changes();
            let op = match self.load(name).await {
                Ok(op) => op,
                Err(Error::NotFound(_)) => return Ok(false),
                Err(e) => return Err(e),
            };
            let held = op.lease.as_ref().is_some_and(|l| l.id == lease_id);
            if !held || op.done() || *closing.borrow_and_update() {
                return Ok(false);
            }
            if op.state == State::Cancelling {
                self.cancel_told(&op, None);
                return Ok(true);
            }
            // Announced before `woken` was made: it will not wake it.
            if self.told_of_announced_cancel(&op) {
                return Ok(true);
            }
            tokio::select! {
                // Announced ahead of its read and commit: no need to wait for them, nor to
                // read the operation again unless it changed since it was read.
                _ = woken => if interest.changes() == read && self.told_of_announced_cancel(&op) {
                    return Ok(true);
                },
                _ = closing.changed() => {}
                _ = self.recheck() => {}
            }
        }
    }

    /// Ends a leased operation with the worker's result. An error with code 1 acknowledges a
    /// cancellation; code 14 is retried while attempts remain; a result reported while
    /// cancelling stands.
    #[tracing::instrument(
        name = "engine.complete",
        skip_all,
        fields(longrun.operation.name = name.as_str(), longrun.succeeded = result.is_ok())
    )]
    pub async fn complete(
        &self,
        name: &Name,
        lease_id: &str,
        result: std::result::Result<serde_json::Value, Status>,
    ) -> Result<Operation> {
        limits::check("leaseId", lease_id, limits::LEASE_ID)?;
        if let Err(status) = &result
            && (status.code == 0 || Code::from_i32(status.code).is_none())
        {
            return Err(Error::invalid(
                "INVALID_STATUS",
                format!("error.code {} is not a google.rpc error code", status.code),
            ));
        }
        self.change(name, |op, now| {
            Self::check_lease(op, lease_id, now)?;
            let (event, outcome) = match result.clone() {
                Ok(response) => (Event::Succeed, Outcome::Response(response_any(response))),
                Err(status) if status.code == Code::Cancelled as i32 => {
                    // A worker told ahead of the cancel's commit may answer first: the
                    // cancel it acknowledges is recorded with it (who asked, and when).
                    if op.cancel.is_none() {
                        op.cancel = self.inner.waiters.announced_request(name.as_str());
                    }
                    (Event::AcknowledgeCancel, Outcome::Error(status))
                }
                Err(status) if status.code == Code::Unavailable as i32 && op.attempts_remain() => (
                    Event::Release,
                    Outcome::Error(Status::new(Code::Cancelled, CANCELLED_BY_USER)),
                ),
                Err(status) => (Event::Fail, Outcome::Error(status)),
            };
            Ok(matches!(
                op.apply(event, Some(outcome), now),
                Transition::Move(_)
            ))
        })
        .await
    }

    /// Hands a leased operation back: a worker or server that stops before the operation
    /// finished (a deploy, SIGTERM) releases what it holds. The operation goes back to
    /// PENDING at once, to be leased again; the start is not counted against `maxAttempts`
    /// (`attempt` still counts it) and nothing is recorded as an error. A CANCELLING
    /// operation ends CANCELLED instead: its work has stopped, as the cancel asked.
    /// Errors: `LeaseNotHeld` (ABORTED) when the lease is not the caller's any more.
    #[tracing::instrument(
        name = "engine.release",
        skip_all,
        fields(longrun.operation.name = name.as_str())
    )]
    pub async fn release(&self, name: &Name, lease_id: &str) -> Result<Operation> {
        self.change(name, |op, now| {
            Self::check_lease(op, lease_id, now)?;
            if op.state == State::Cancelling {
                let status = Status::new(Code::Cancelled, CANCELLED_BY_USER);
                return Ok(matches!(
                    op.apply(Event::AcknowledgeCancel, Some(Outcome::Error(status)), now),
                    Transition::Move(_)
                ));
            }
            let moved = matches!(op.apply(Event::Release, None, now), Transition::Move(_));
            if moved {
                op.releases += 1;
            }
            Ok(moved)
        })
        .await
    }

    /// Reports how long after its acceptance a cancel reached the worker (`delay`; `None`:
    /// until now), the first time it does: later heartbeats of the CANCELLING operation
    /// tell it again, and are not counted.
    pub(crate) fn cancel_told(&self, op: &Operation, delay: impl Into<Option<Duration>>) {
        let Some(cancel) = &op.cancel else { return };
        let first = self
            .inner
            .delivered
            .lock()
            .expect("delivered lock")
            .first(op.name.as_str(), cancel.time);
        if first {
            let delay = delay.into().unwrap_or_else(|| {
                Duration::from_millis((self.now().millis() - cancel.time.millis()).max(0) as u64)
            });
            self.inner.options.observer.cancel_delivered(delay);
        }
    }

    /// Ends what is overdue: operations past their timeout, cancels past their grace, and
    /// leases that lapsed (back to the queue, or FAILED when attempts are used up).
    pub async fn sweep(&self) -> Result<usize> {
        let due = self.inner.store.due(self.now(), 1000).await?;
        let count = due.len();
        for op in due {
            let now = self.now();
            let lapsed = op.lease.as_ref().is_some_and(|l| l.expire_time < now)
                && op.deadline.is_none_or(|d| d >= now);
            let result = self
                .change(&op.name, |op, now| {
                    if op.done() {
                        return Ok(false);
                    }
                    let (event, outcome) = if op.state == State::Pending
                        && op.start_time.is_none()
                        && op.start_deadline().is_some_and(|d| d < now)
                    {
                        (
                            Event::Timeout,
                            Status::new(Code::DeadlineExceeded, NOT_STARTED_IN_TIME),
                        )
                    } else if op.deadline.is_some_and(|d| d < now) {
                        let status = if op.state == State::Cancelling {
                            Status::new(Code::Cancelled, CANCELLED_BY_USER)
                        } else {
                            Status::new(Code::DeadlineExceeded, "Operation exceeded its timeout.")
                        };
                        (Event::Timeout, status)
                    } else if op.lease.as_ref().is_some_and(|l| l.expire_time < now) {
                        match op.state {
                            State::Cancelling => (
                                Event::GraceExpired,
                                Status::new(
                                    Code::Cancelled,
                                    "Operation cancelled by user; the worker did not stop within the cancel grace period.",
                                ),
                            ),
                            _ if op.attempts_remain() => (
                                Event::Release,
                                Status::new(Code::Unavailable, "The worker stopped reporting."),
                            ),
                            _ => (
                                Event::Fail,
                                Status::new(
                                    Code::Unavailable,
                                    format!("The worker stopped reporting; {} attempts used.", op.attempt - op.releases),
                                ),
                            ),
                        }
                    } else {
                        return Ok(false);
                    };
                    Ok(matches!(op.apply(event, Some(Outcome::Error(outcome)), now), Transition::Move(_)))
                })
                .await;
            match result {
                Ok(stored) => {
                    if lapsed && stored.state != op.state {
                        self.inner.options.observer.lease_expired();
                    }
                }
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(count)
    }
}

#[cfg(test)]
mod early_cancel;
#[cfg(test)]
mod tests;
