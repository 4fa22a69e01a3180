//! Bulk retry (docs/operations.md#batch-retry): a `BATCH_RETRY` job retries every match that
//! is done ([`Engine::retry`]) and counts those not done.
//!
//! Each retry's request id is derived from the job and the original
//! (`longrun_engine::retry_request_id`), so a run after a restart answers the retries the
//! first run made instead of making them again, and counts them as retried: the counts are
//! exact across restarts (a done operation stays done). A full queue ends the job FAILED with
//! `RESOURCE_EXHAUSTED`; the retries made before stay.

use super::{Job, Tally, interrupted};
use crate::kit::error::ApiError;
use longrun_engine::{Engine, Retry, Submission};
use longrun_types::operation::Status;
use longrun_types::{Name, Operation, Project};
use longrun_worker::Context;
use serde_json::{Value, json};
use std::future::Future;

/// The operation type of a bulk retry.
pub const TYPE: &str = "BATCH_RETRY";

/// The `@type` of its response.
pub const RESPONSE_TYPE: &str = "type.googleapis.com/longrun.v1.BatchRetryResponse";

/// Checks the request's JSON body and creates the job: the operation to return.
pub async fn submit_json(
    engine: &Engine,
    project: &Project,
    bytes: &[u8],
) -> Result<Operation, ApiError> {
    let filter = super::filter_of(bytes, VERB, DOES)?;
    submit(engine, project, filter).await
}

const VERB: &str = "batchRetry";
const DOES: &str = "retries";

/// Checks `filter` and creates the job that retries its matches: the operation to return.
pub async fn submit(
    engine: &Engine,
    project: &Project,
    filter: String,
) -> Result<Operation, ApiError> {
    let filter = super::checked(filter, VERB, DOES)?;
    let submission = Submission {
        op_type: TYPE.into(),
        description: format!("Retry the operations matching {filter}"),
        payload: Some(json!({"filter": filter})),
        // Runs again after a restart until it finishes.
        max_attempts: Some(1000),
        ..Submission::default()
    };
    Ok(engine.submit(project, submission).await?)
}

/// A bulk retry: the job `job` retries in its own name.
struct BulkRetry {
    job: Name,
}

impl Job for BulkRetry {
    fn decide(&self, op: &Operation) -> Option<Tally> {
        (!op.done()).then_some(Tally::Passed)
    }

    fn act(
        &self,
        engine: Engine,
        op: Operation,
    ) -> impl Future<Output = Result<Tally, Status>> + Send + 'static {
        let request_id = longrun_engine::retry_request_id(&self.job, &op.name);
        async move {
            use longrun_engine::Error;
            let retry = Retry {
                operation_id: None,
                request_id: Some(request_id),
            };
            match engine.retry(&op.name, retry).await {
                Ok(_) => Ok(Tally::Acted),
                // Gone meanwhile: not counted.
                Err(Error::NotFound(_)) => Ok(Tally::Uncounted),
                Err(e @ (Error::Unavailable(_) | Error::Internal(_))) => Err(interrupted(e)),
                // A full queue, or a retry its type's rules now refuse: the job ends with it.
                Err(e) => Err(Status::new(
                    e.code(),
                    format!("batch retry stopped at {}: {e}", op.name),
                )),
            }
        }
    }
}

/// One run of a bulk retry.
pub async fn run(engine: Engine, ctx: Context) -> Result<Value, Status> {
    let job = ctx.name().clone();
    let retry = BulkRetry { job: job.clone() };
    let counts = super::run(engine, &ctx, retry, "retrying").await?;
    let matched = counts.matched();
    tracing::info!(job = %job, matched, retried = counts.acted, "bulk retry done");
    Ok(json!({
        "@type": RESPONSE_TYPE,
        "matchedCount": matched.to_string(),
        "retriedCount": counts.acted.to_string(),
        "notDoneCount": counts.passed.to_string(),
    }))
}
