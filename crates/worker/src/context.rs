//! What a handler sees of its operation: the payload, progress reporting, and the
//! cancellation signal.

use crate::Assignment;
use crate::backend::{Backend, BackendError, Child};
use longrun_engine::Report;
use longrun_types::operation::Stage;
use longrun_types::{Name, State};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

#[derive(Clone)]
pub struct Context {
    assignment: Arc<Assignment>,
    cancelled: watch::Receiver<bool>,
    /// What changed since the last heartbeat.
    pending: Arc<Mutex<Report>>,
    stages: Arc<Mutex<Vec<Stage>>>,
    destinations: Arc<Mutex<Vec<String>>>,
    /// Where children are submitted and waited for.
    backend: Arc<dyn Backend>,
}

impl Context {
    pub(crate) fn new(
        assignment: Arc<Assignment>,
        cancelled: watch::Receiver<bool>,
        backend: Arc<dyn Backend>,
    ) -> Context {
        Context {
            assignment,
            cancelled,
            pending: Arc::default(),
            stages: Arc::default(),
            destinations: Arc::default(),
            backend,
        }
    }

    pub(crate) fn assignment(&self) -> &Assignment {
        &self.assignment
    }

    pub fn name(&self) -> &Name {
        &self.assignment.name
    }

    pub fn payload(&self) -> &Value {
        &self.assignment.payload
    }

    /// The `concurrencyKey` the operation was submitted with, if any
    /// (docs/projects.md#concurrency-keys).
    pub fn concurrency_key(&self) -> Option<&str> {
        self.assignment.concurrency_key.as_deref()
    }

    /// Reports progress, 0..1; sent with the next heartbeat.
    pub fn progress(&self, fraction: f64) {
        self.pending.lock().expect("report lock").progress = Some(fraction.clamp(0.0, 1.0));
    }

    /// Reports the work units of a stage, adding the stage the first time it is named.
    pub fn stage(&self, name: &str, done: i64, total: i64) {
        let mut stages = self.stages.lock().expect("stages lock");
        match stages.iter_mut().find(|s| s.display_name == name) {
            Some(stage) => {
                stage.complete_work_units = done;
                stage.total_work_units = total;
            }
            None => stages.push(Stage {
                display_name: name.to_string(),
                description: String::new(),
                complete_work_units: done,
                total_work_units: total,
            }),
        }
        self.pending.lock().expect("report lock").stages = Some(stages.clone());
    }

    /// Adds a destination URI of the operation's output.
    pub fn destination(&self, uri: &str) {
        let mut all = self.destinations.lock().expect("destinations lock");
        all.push(uri.to_string());
        self.pending.lock().expect("report lock").destination_uris = Some(all.clone());
    }

    /// Reports the compute used so far, in EECU-seconds.
    pub fn usage(&self, seconds: f64) {
        self.pending
            .lock()
            .expect("report lock")
            .batch_eecu_usage_seconds = Some(seconds);
    }

    /// Resolves once cancellation is requested (or the lease is lost): stop soon after.
    pub async fn cancelled(&self) {
        let mut cancelled = self.cancelled.clone();
        let _ = cancelled.wait_for(|c| *c).await;
    }

    pub fn is_cancelled(&self) -> bool {
        *self.cancelled.borrow()
    }

    /// Submits `child` as a child of this operation (docs/operations.md#parents-and-children):
    /// it may run while this one runs, and it is cancelled when this one ends or is
    /// cancelled. Its name; `Refused` once this operation is cancelled or done. The worker's
    /// credentials need submit's permission.
    pub async fn submit_child(&self, child: &Child) -> Result<Name, BackendError> {
        self.backend.submit_child(self.name(), child).await
    }

    /// Waits until each of `children` is done, up to `timeout` in all; the states they
    /// stand in then, in order (a child not done by then is in its current state).
    pub async fn wait_children(
        &self,
        children: &[Name],
        timeout: std::time::Duration,
    ) -> Result<Vec<State>, BackendError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut states = Vec::with_capacity(children.len());
        for child in children {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            states.push(self.backend.wait(child, left).await?);
        }
        Ok(states)
    }

    /// Takes what changed since the last call, for a heartbeat.
    pub(crate) fn take_report(&self) -> Report {
        std::mem::take(&mut *self.pending.lock().expect("report lock"))
    }
}
