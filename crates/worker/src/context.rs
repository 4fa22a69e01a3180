//! What a handler sees of its operation: the payload, progress reporting, and the
//! cancellation signal.

use crate::Assignment;
use longrun_engine::Report;
use longrun_types::Name;
use longrun_types::operation::Stage;
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
}

impl Context {
    pub(crate) fn new(assignment: Arc<Assignment>, cancelled: watch::Receiver<bool>) -> Context {
        Context {
            assignment,
            cancelled,
            pending: Arc::default(),
            stages: Arc::default(),
            destinations: Arc::default(),
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

    /// Takes what changed since the last call, for a heartbeat.
    pub(crate) fn take_report(&self) -> Report {
        std::mem::take(&mut *self.pending.lock().expect("report lock"))
    }
}
