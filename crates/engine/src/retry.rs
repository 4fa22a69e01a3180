//! Retry (docs/operations.md#retry): a done operation runs again as a new PENDING operation
//! of the same project, with the same type, payload, description, priority, script,
//! concurrency key, attempts and timeout, and `retry_of` naming the original, which is left
//! as it was.

use crate::{Engine, Error, Result, Submission};
use longrun_types::{Name, Operation};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// What a retry may say about the operation it creates; the rest is the original's.
#[derive(Debug, Clone, Default)]
pub struct Retry {
    /// The new operation's id, as a submit's `operationId`; absent: a generated id.
    pub operation_id: Option<String>,
    /// Deduplication, as a submit's `requestId`: the same id again (in the project) answers
    /// the operation it created.
    pub request_id: Option<String>,
}

/// The request id of the retry of `original` made by the job `by` (a bulk retry): the same
/// on every run of the job, so a job run again after a restart retries nothing twice. Fits
/// the request id's limit whatever the length of the names.
pub fn retry_request_id(by: &Name, original: &Name) -> String {
    let mut digest = Sha256::new();
    digest.update(by.as_str().as_bytes());
    digest.update([0]);
    digest.update(original.as_str().as_bytes());
    let hex: String = digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("retry-{hex}")
}

/// The submit that runs `original` again.
fn resubmission(original: &Operation, payload: serde_json::Value, r: Retry) -> Submission {
    Submission {
        op_type: original.op_type.clone(),
        description: original.description.clone(),
        priority: Some(original.priority.into()),
        request_id: r.request_id,
        operation_id: r.operation_id,
        payload: Some(payload),
        script_uri: original.script_uri.clone(),
        // Reported by the worker of each run, not carried over.
        destination_uris: Vec::new(),
        max_attempts: Some(original.max_attempts.into()),
        // The effective timeout the original had, from its own creation.
        timeout: original.deadline.map(|deadline| {
            let ms = deadline.millis() - original.create_time.millis();
            Duration::from_millis(u64::try_from(ms).unwrap_or(0))
        }),
        concurrency_key: original.concurrency_key.clone(),
        // A retry is queued now: the original's scheduleTime and startTimeout, about when
        // it was to start, are not carried over.
        schedule_time: None,
        start_timeout: None,
        // Its own run, not a firing of the original's schedule.
        schedule: None,
        // Under the same parent, which must still be PENDING or RUNNING.
        parent: original.parent.clone(),
    }
}

impl Engine {
    /// Queues a retry of the done operation `name` (docs/operations.md#retry): a new PENDING
    /// operation in its project with what the original was submitted with, and `retry_of`
    /// naming it. The original is not changed. Not done: [`Error::NotDone`]. A `request_id`
    /// seen before in the project answers the operation it created, as a submit does.
    #[tracing::instrument(
        name = "engine.retry",
        skip_all,
        fields(
            longrun.operation.retry_of = name.as_str(),
            longrun.operation.name = tracing::field::Empty,
        )
    )]
    pub async fn retry(&self, name: &Name, r: Retry) -> Result<Operation> {
        let original = self.load(name).await?;
        if !original.done() {
            return Err(Error::NotDone(name.clone()));
        }
        let payload = self
            .inner
            .store
            .payload(name)
            .await?
            .unwrap_or(serde_json::Value::Object(Default::default()));
        let submission = resubmission(&original, payload, r);
        self.create(&name.project(), submission, Some(name.clone()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{fixture, project};
    use longrun_store::Operations;

    #[tokio::test]
    async fn a_retry_copies_the_submission_and_names_the_original() {
        let f = fixture(|_| {});
        let submitted = f
            .engine
            .submit(
                &project(),
                Submission {
                    op_type: "T".into(),
                    description: "nightly".into(),
                    priority: Some(7),
                    payload: Some(serde_json::json!({"k": [1, 2]})),
                    script_uri: "s".into(),
                    max_attempts: Some(3),
                    timeout: Some(Duration::from_secs(60)),
                    concurrency_key: Some("key".into()),
                    operation_id: Some("a".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let retry = |id: &str| Retry {
            operation_id: Some(id.into()),
            request_id: Some("r1".into()),
        };
        assert!(matches!(
            f.engine.retry(&submitted.name, retry("b")).await,
            Err(Error::NotDone(_))
        ));
        f.clock
            .0
            .fetch_add(5_000, std::sync::atomic::Ordering::SeqCst);
        let cancelled = f.engine.cancel(&submitted.name, "me").await.unwrap();
        let again = f.engine.retry(&submitted.name, retry("b")).await.unwrap();
        assert_eq!(again.name.id(), "b");
        assert_eq!(again.retry_of.as_ref(), Some(&submitted.name));
        assert_eq!(
            (
                again.op_type.as_str(),
                again.description.as_str(),
                again.priority
            ),
            ("T", "nightly", 7)
        );
        assert_eq!((again.max_attempts, again.attempt), (3, 1));
        assert_eq!(again.script_uri, "s");
        assert_eq!(again.concurrency_key.as_deref(), Some("key"));
        assert_eq!(
            again.deadline.unwrap().millis() - again.create_time.millis(),
            60_000
        );
        assert_eq!(
            f.store.payload(&again.name).await.unwrap(),
            Some(serde_json::json!({"k": [1, 2]}))
        );
        // The original is as it was; the same request id answers the same retry.
        assert_eq!(cancelled.error_code(), Some(1));
        assert_eq!(f.engine.get(&submitted.name).await.unwrap(), cancelled);
        let repeated = f.engine.retry(&submitted.name, retry("c")).await.unwrap();
        assert_eq!(repeated, again);
    }

    #[test]
    fn a_jobs_request_ids_are_its_own_and_fit_the_limit() {
        let p = project();
        let long = "x".repeat(900);
        let (job, a, b) = (
            Name::new(&p, "job").unwrap(),
            Name::new(&p, &long).unwrap(),
            Name::new(&p, "b").unwrap(),
        );
        let id = retry_request_id(&job, &a);
        assert_eq!(id, retry_request_id(&job, &a));
        assert_ne!(id, retry_request_id(&job, &b));
        assert_ne!(id, retry_request_id(&b, &a));
        assert!(id.len() <= longrun_types::limits::REQUEST_ID, "{id}");
    }
}
