//! Bulk jobs: `POST /{v}/projects/{p}/operations:batchCancel` (docs/watch.md#bulk-cancel) and
//! `:batchRetry` (docs/operations.md#batch-retry) take `{"filter": F}` and create an
//! operation (`BATCH_CANCEL`, `BATCH_RETRY`) that a built-in worker runs like any other: it
//! is leased, heartbeated, cancellable, and released on shutdown, so a restart in the middle
//! runs it again on the next start and it finishes the job.
//!
//! A job acts on every operation of the project that matches F and was created before the
//! job (later ones are not its business, and this bounds the work), itself excepted, a page
//! at a time with [`IN_FLIGHT`] calls at once. What it does to each match and how it counts
//! it is its kind's ([`Job`]): `cancel` and `retry`.

pub mod cancel;
pub mod retry;

use crate::kit::body;
use crate::kit::error::ApiError;
use longrun_engine::Engine;
use longrun_types::operation::Status;
use longrun_types::{Code, Operation, filter};
use longrun_worker::{Context, Worker};
use serde::Deserialize;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Calls in flight at once (they share the store's group commits).
const IN_FLIGHT: usize = 64;

/// Operations read per page.
const PAGE: i64 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    filter: Option<String>,
}

/// The filter of a bulk request's JSON body `bytes`, checked as [`checked`] does.
fn filter_of(bytes: &[u8], verb: &str, does: &str) -> Result<String, ApiError> {
    let Body { filter } = body::json(bytes)?;
    checked(filter.unwrap_or_default(), verb, does)
}

/// A bulk request's filter, checked: required, non-empty, and valid. `verb` (`batchCancel`)
/// and `does` (`cancels`) say what it is for in the error.
fn checked(filter: String, verb: &str, does: &str) -> Result<String, ApiError> {
    if filter.trim().is_empty() {
        return Err(ApiError::invalid(
            "INVALID_FILTER",
            format!("filter is required: {verb} {does} the operations that match it"),
        )
        .with("field", "filter"));
    }
    filter::parse(&filter).map_err(|e| ApiError::invalid("INVALID_FILTER", e.to_string()))?;
    Ok(filter)
}

/// The built-in worker that runs the bulk jobs on this server's engine.
pub fn worker(engine: Engine) -> Worker {
    let retrying = engine.clone();
    Worker::new("builtin-bulk")
        .handle(cancel::TYPE, move |ctx| cancel::run(engine.clone(), ctx))
        .handle(retry::TYPE, move |ctx| retry::run(retrying.clone(), ctx))
        .concurrency(2)
        .lease_duration(Duration::from_secs(10))
        .lease_poll(Duration::from_millis(500))
        .shutdown_grace(Duration::ZERO)
}

/// A failure of the job's run that a later run may not meet: the worker loop puts the job
/// back in the queue (code 14) to try again.
fn interrupted(e: impl std::fmt::Display) -> Status {
    Status::new(Code::Unavailable, format!("bulk job interrupted: {e}"))
}

/// How one match counts.
pub(crate) enum Tally {
    /// Acted on (cancelled, retried).
    Acted,
    /// Matched, and left as it is (already done, not done).
    Passed,
    /// Not counted: gone meanwhile, or not something the job can act on.
    Uncounted,
}

/// What a kind of bulk job does to each match.
pub(crate) trait Job: Send + Sync + 'static {
    /// How `op` counts when the job need not call the engine for it; `None`: [`Job::act`].
    fn decide(&self, op: &Operation) -> Option<Tally>;

    /// Acts on `op`; an error ends the run (see [`interrupted`]).
    fn act(
        &self,
        engine: Engine,
        op: Operation,
    ) -> impl Future<Output = Result<Tally, Status>> + Send + 'static;
}

/// The counts of a run: matched = acted + passed.
#[derive(Default)]
pub(crate) struct Counts {
    pub acted: i64,
    pub passed: i64,
}

impl Counts {
    fn add(&mut self, tally: Tally) {
        match tally {
            Tally::Acted => self.acted += 1,
            Tally::Passed => self.passed += 1,
            Tally::Uncounted => {}
        }
    }

    pub fn matched(&self) -> i64 {
        self.acted + self.passed
    }
}

/// One run of a job: pages through the matches of its payload's `filter`, hands each to
/// `job`, and counts. `stage` names the work in its progress (`cancelling`).
async fn run(engine: Engine, ctx: &Context, job: impl Job, stage: &str) -> Result<Counts, Status> {
    let name = ctx.name().clone();
    let filter = ctx.payload()["filter"].as_str().unwrap_or_default();
    let created = engine.get(&name).await.map_err(interrupted)?.create_time;
    let scoped = format!("({filter}) AND metadata.createTime <= \"{created}\"");
    let project = name.project();
    let job = Arc::new(job);
    let mut counts = Counts::default();
    let mut token = String::new();
    loop {
        if ctx.is_cancelled() {
            return Err(Status::new(Code::Cancelled, "Bulk job cancelled."));
        }
        let page = engine
            .list(&project, &scoped, PAGE, &token)
            .await
            .map_err(interrupted)?;
        let mut calls = tokio::task::JoinSet::new();
        for op in page.operations {
            if op.name == name {
                continue;
            }
            if let Some(tally) = job.decide(&op) {
                counts.add(tally);
                continue;
            }
            while calls.len() >= IN_FLIGHT {
                counts.add(joined(calls.join_next().await)?);
            }
            calls.spawn(job.act(engine.clone(), op));
        }
        while let Some(call) = calls.join_next().await {
            counts.add(joined(Some(call))?);
        }
        let handled = counts.matched();
        ctx.stage(stage, handled, handled);
        match page.next_page_token {
            Some(next) => token = next,
            None => break,
        }
    }
    Ok(counts)
}

type Joined = Option<Result<Result<Tally, Status>, tokio::task::JoinError>>;

fn joined(call: Joined) -> Result<Tally, Status> {
    match call {
        None => Ok(Tally::Uncounted),
        Some(Err(e)) => Err(interrupted(e)),
        Some(Ok(tally)) => tally,
    }
}

/// Starts the bulk worker; it stops leasing when `stopped` turns true and releases what it
/// runs (run again on the next start).
pub fn start(
    engine: &Engine,
    stopped: &tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let mut stopped = stopped.clone();
    let backend = Arc::new(engine.clone());
    let worker = worker(engine.clone());
    tokio::spawn(async move {
        worker
            .run(backend, async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
    })
}
