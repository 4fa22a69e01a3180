//! Bulk cancel (docs/watch.md#bulk-cancel): `POST /{v}/projects/{p}/operations:batchCancel`
//! `{"filter": F}` creates an operation of type `BATCH_CANCEL`, which a built-in worker
//! runs like any other: it is leased, heartbeated, cancellable, and released on shutdown,
//! so a restart in the middle runs it again on the next start and it finishes the job.
//!
//! The job cancels every operation of the project that matches F and was created before
//! the job (later ones are not its business, and this bounds the work), itself excepted.
//! Counts: an operation that was not done counts as cancelled once its cancel is accepted
//! (RUNNING ones become CANCELLING); one cancelled by an earlier run of the same job (its
//! cancel names the job) counts as cancelled too; other done ones count as already done.
//! Operations of a type that cannot be cancelled are not counted (they are not matches the
//! job can act on). Stated limit: after a restart, operations the first run cancelled that
//! no longer match F (F on the state) are not counted again.

use crate::kit::body;
use crate::kit::error::ApiError;
use longrun_engine::{Engine, Submission};
use longrun_types::operation::Status;
use longrun_types::{Code, Name, Operation, Project, State, filter};
use longrun_worker::{Context, Worker};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// The operation type of a bulk cancel.
pub const TYPE: &str = "BATCH_CANCEL";

/// The `@type` of its response.
pub const RESPONSE_TYPE: &str = "type.googleapis.com/longrun.v1.BatchCancelResponse";

/// Cancels in flight at once (they share the store's group commits).
const IN_FLIGHT: usize = 64;

/// Operations read per page.
const PAGE: i64 = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    filter: Option<String>,
}

/// Checks the request and creates the job: the operation to return. `principal` (the
/// caller's member name) is named in the cancels the job makes.
pub async fn submit(
    engine: &Engine,
    project: &Project,
    principal: &str,
    bytes: &[u8],
) -> Result<Operation, ApiError> {
    let Body { filter } = body::json(bytes)?;
    let filter = filter.unwrap_or_default();
    if filter.trim().is_empty() {
        return Err(ApiError::invalid(
            "INVALID_FILTER",
            "filter is required: batchCancel cancels the operations that match it",
        )
        .with("field", "filter"));
    }
    filter::parse(&filter).map_err(|e| ApiError::invalid("INVALID_FILTER", e.to_string()))?;
    let submission = Submission {
        op_type: TYPE.into(),
        description: format!("Cancel the operations matching {filter}"),
        payload: Some(json!({"filter": filter, "principal": principal})),
        // Runs again after a restart until it finishes.
        max_attempts: Some(1000),
        ..Submission::default()
    };
    Ok(engine.submit(project, submission).await?)
}

/// The built-in worker that runs bulk cancels on this server's engine.
pub fn worker(engine: Engine) -> Worker {
    Worker::new("builtin-batch-cancel")
        .handle(TYPE, move |ctx| run(engine.clone(), ctx))
        .concurrency(2)
        .lease_duration(Duration::from_secs(10))
        .lease_poll(Duration::from_millis(500))
        .shutdown_grace(Duration::ZERO)
}

fn internal(e: impl std::fmt::Display) -> Status {
    // Unavailable: the worker loop puts the job back in the queue to try again.
    Status::new(Code::Unavailable, format!("bulk cancel interrupted: {e}"))
}

/// The principal named in this job's cancels.
fn canceller(principal: &str, job: &Name) -> String {
    format!("{principal} (batchCancel {job})")
}

#[derive(Default)]
struct Counts {
    cancelled: i64,
    already_done: i64,
}

/// One job: pages through the matches, cancels those not done, counts.
async fn run(engine: Engine, ctx: Context) -> Result<Value, Status> {
    let job = ctx.name().clone();
    let filter = ctx.payload()["filter"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let principal = canceller(
        ctx.payload()["principal"].as_str().unwrap_or_default(),
        &job,
    );
    let created = engine.get(&job).await.map_err(internal)?.create_time;
    let scoped = format!("({filter}) AND metadata.createTime <= \"{created}\"");
    let project = job.project();
    let mut counts = Counts::default();
    let mut token = String::new();
    loop {
        if ctx.is_cancelled() {
            return Err(Status::new(Code::Cancelled, "Bulk cancel cancelled."));
        }
        let page = engine
            .list(&project, &scoped, PAGE, &token)
            .await
            .map_err(internal)?;
        let mut cancels = tokio::task::JoinSet::new();
        for op in page.operations {
            if op.name == job {
                continue;
            }
            if op.done() {
                let ours = op.cancel.as_ref().is_some_and(|c| c.principal == principal);
                if ours && op.state == State::Cancelled {
                    counts.cancelled += 1;
                } else {
                    counts.already_done += 1;
                }
                continue;
            }
            while cancels.len() >= IN_FLIGHT {
                tally(cancels.join_next().await, &mut counts)?;
            }
            let (engine, principal) = (engine.clone(), principal.clone());
            cancels.spawn(async move { engine.cancel(&op.name, &principal).await });
        }
        while let Some(done) = cancels.join_next().await {
            tally(Some(done), &mut counts)?;
        }
        let handled = counts.cancelled + counts.already_done;
        ctx.stage("cancelling", handled, handled);
        match page.next_page_token {
            Some(next) => token = next,
            None => break,
        }
    }
    let matched = counts.cancelled + counts.already_done;
    tracing::info!(job = %job, matched, cancelled = counts.cancelled, "bulk cancel done");
    Ok(json!({
        "@type": RESPONSE_TYPE,
        "matchedCount": matched.to_string(),
        "cancelledCount": counts.cancelled.to_string(),
        "alreadyDoneCount": counts.already_done.to_string(),
    }))
}

type CancelResult = Result<Result<Operation, longrun_engine::Error>, tokio::task::JoinError>;

fn tally(done: Option<CancelResult>, counts: &mut Counts) -> Result<(), Status> {
    use longrun_engine::Error;
    match done {
        None => Ok(()),
        Some(Err(e)) => Err(internal(e)),
        // Cancelled now, or CANCELLING: its cancel is requested.
        Some(Ok(Ok(op))) if !op.done() || op.state == State::Cancelled => {
            counts.cancelled += 1;
            Ok(())
        }
        // It ended by itself meanwhile.
        Some(Ok(Ok(_))) => {
            counts.already_done += 1;
            Ok(())
        }
        // Gone meanwhile, or of a type that cannot be cancelled: not counted.
        Some(Ok(Err(Error::NotFound(_) | Error::Unimplemented(_)))) => Ok(()),
        Some(Ok(Err(e))) => Err(internal(e)),
    }
}

/// Starts the bulk cancel worker; it stops leasing when `stopped` turns true and releases
/// what it runs (run again on the next start).
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
