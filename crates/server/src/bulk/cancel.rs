//! Bulk cancel (docs/watch.md#bulk-cancel): a `BATCH_CANCEL` job cancels every match that
//! is not done.
//!
//! Counts: an operation that was not done counts as cancelled once its cancel is accepted
//! (RUNNING ones become CANCELLING); one cancelled by an earlier run of the same job (its
//! cancel names the job) counts as cancelled too; other done ones count as already done.
//! Operations of a type that cannot be cancelled are not counted (they are not matches the
//! job can act on). Stated limit: after a restart, operations the first run cancelled that
//! no longer match F (F on the state) are not counted again.

use super::{Job, Tally, interrupted};
use crate::kit::error::ApiError;
use longrun_engine::{Engine, Submission};
use longrun_types::operation::Status;
use longrun_types::{Name, Operation, Project, State};
use longrun_worker::Context;
use serde_json::{Value, json};
use std::future::Future;

/// The operation type of a bulk cancel.
pub const TYPE: &str = "BATCH_CANCEL";

/// The `@type` of its response.
pub const RESPONSE_TYPE: &str = "type.googleapis.com/longrun.v1.BatchCancelResponse";

/// Checks the request and creates the job: the operation to return. `principal` (the
/// caller's member name) is named in the cancels the job makes.
pub async fn submit(
    engine: &Engine,
    project: &Project,
    principal: &str,
    bytes: &[u8],
) -> Result<Operation, ApiError> {
    let filter = super::filter_of(bytes, "batchCancel", "cancels")?;
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

/// The principal named in this job's cancels.
fn canceller(principal: &str, job: &Name) -> String {
    format!("{principal} (batchCancel {job})")
}

/// A bulk cancel: cancels in the name of `principal`.
struct Cancel {
    principal: String,
}

impl Job for Cancel {
    fn decide(&self, op: &Operation) -> Option<Tally> {
        if !op.done() {
            return None;
        }
        let ours = op
            .cancel
            .as_ref()
            .is_some_and(|c| c.principal == self.principal);
        Some(if ours && op.state == State::Cancelled {
            Tally::Acted
        } else {
            Tally::Passed
        })
    }

    fn act(
        &self,
        engine: Engine,
        op: Operation,
    ) -> impl Future<Output = Result<Tally, Status>> + Send + 'static {
        let principal = self.principal.clone();
        async move {
            use longrun_engine::Error;
            match engine.cancel(&op.name, &principal).await {
                // Cancelled now, or CANCELLING: its cancel is requested.
                Ok(op) if !op.done() || op.state == State::Cancelled => Ok(Tally::Acted),
                // It ended by itself meanwhile.
                Ok(_) => Ok(Tally::Passed),
                // Gone meanwhile, or of a type that cannot be cancelled: not counted.
                Err(Error::NotFound(_) | Error::Unimplemented(_)) => Ok(Tally::Uncounted),
                Err(e) => Err(interrupted(e)),
            }
        }
    }
}

/// One run of a bulk cancel.
pub async fn run(engine: Engine, ctx: Context) -> Result<Value, Status> {
    let job = ctx.name().clone();
    let principal = canceller(
        ctx.payload()["principal"].as_str().unwrap_or_default(),
        &job,
    );
    let counts = super::run(engine, &ctx, Cancel { principal }, "cancelling").await?;
    let matched = counts.matched();
    tracing::info!(job = %job, matched, cancelled = counts.acted, "bulk cancel done");
    Ok(json!({
        "@type": RESPONSE_TYPE,
        "matchedCount": matched.to_string(),
        "cancelledCount": counts.acted.to_string(),
        "alreadyDoneCount": counts.passed.to_string(),
    }))
}
