//! Where a worker gets work and reports: over HTTP, or in-process on the engine.

use async_trait::async_trait;
use longrun_client::Client;
use longrun_engine::{Engine, LeaseRequest, Report, Submission};
use longrun_types::operation::Status;
use longrun_types::{Name, State, duration};
use serde_json::{Value, json};
use std::time::Duration;

/// One leased operation.
#[derive(Debug, Clone)]
pub struct Assignment {
    pub name: Name,
    pub op_type: String,
    pub lease_id: String,
    pub payload: Value,
    /// The `concurrencyKey` it was submitted with (docs/projects.md#concurrency-keys), if any.
    pub concurrency_key: Option<String>,
}

#[derive(Debug)]
pub enum BackendError {
    /// The lease is no longer held: stop, and report nothing more.
    LeaseLost,
    /// Anything worth retrying (connection refused, server restarting).
    Transient(String),
    /// The server refused the call for good (a child under a parent that is no longer
    /// PENDING or RUNNING, an invalid submission): its google.rpc code and message.
    Refused { code: i32, message: String },
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendError::LeaseLost => f.write_str("the lease is no longer held"),
            BackendError::Transient(why) => write!(f, "{why}"),
            BackendError::Refused { code, message } => write!(f, "refused ({code}): {message}"),
        }
    }
}

impl std::error::Error for BackendError {}

/// An operation a handler submits under the one it runs
/// (docs/operations.md#parents-and-children; `Context::submit_child`).
#[derive(Debug, Clone, Default)]
pub struct Child {
    pub op_type: String,
    /// Handed to the child's worker; `null` is sent as `{}`.
    pub payload: Value,
    pub description: String,
    /// The child's id (one or more segments); `None`: a generated one.
    pub operation_id: Option<String>,
}

impl Child {
    /// A child of type `op_type` with `payload`.
    pub fn new(op_type: &str, payload: Value) -> Child {
        Child {
            op_type: op_type.to_string(),
            payload,
            ..Child::default()
        }
    }

    /// The child's submit body (docs/operations.md#submit) under `parent`.
    fn body(&self, parent: &Name) -> Value {
        let mut body = json!({
            "type": self.op_type,
            "description": self.description,
            "payload": if self.payload.is_null() { json!({}) } else { self.payload.clone() },
            "parent": parent.as_str(),
        });
        if let Some(id) = &self.operation_id {
            body["operationId"] = json!(id);
        }
        body
    }
}

#[async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn lease(
        &self,
        worker: &str,
        types: &[String],
        max: usize,
        wait: Duration,
        lease_duration: Duration,
    ) -> Result<Vec<Assignment>, BackendError>;

    /// Extends the lease and reports progress; with `wait_for_cancel`, returns early when a
    /// cancellation is requested. Returns whether one is.
    async fn heartbeat(
        &self,
        assignment: &Assignment,
        report: Report,
        wait_for_cancel: Duration,
    ) -> Result<bool, BackendError>;

    async fn complete(
        &self,
        assignment: &Assignment,
        result: Result<Value, Status>,
    ) -> Result<(), BackendError>;

    /// Hands the operation back unfinished (the worker stops): it returns to the queue
    /// without spending an attempt.
    async fn release(&self, assignment: &Assignment) -> Result<(), BackendError>;

    /// Ends the waits of the leases in flight (the worker stops), where the transport can:
    /// they are answered at once with what they have. By default nothing: the lease ends
    /// with its wait.
    async fn stop_leasing(&self) {}

    /// Submits `child` under `parent` (docs/operations.md#parents-and-children); its name.
    /// `Refused` when the parent is no longer PENDING or RUNNING or the child is invalid.
    async fn submit_child(&self, parent: &Name, child: &Child) -> Result<Name, BackendError>;

    /// The state of `name` once it is done, or as it stands after `timeout`.
    async fn wait(&self, name: &Name, timeout: Duration) -> Result<State, BackendError>;
}

/// An engine error that is not a lapsed lease: `Unavailable` is transient, the rest refusals.
fn refused(e: longrun_engine::Error) -> BackendError {
    match e {
        longrun_engine::Error::Unavailable(why) => BackendError::Transient(why),
        other => BackendError::Refused {
            code: other.code() as i32,
            message: other.to_string(),
        },
    }
}

fn engine_error(e: longrun_engine::Error) -> BackendError {
    match e {
        longrun_engine::Error::LeaseNotHeld { .. } | longrun_engine::Error::NotFound(_) => {
            BackendError::LeaseLost
        }
        other => BackendError::Transient(other.to_string()),
    }
}

/// The in-process backend of the executors built into the server.
#[async_trait]
impl Backend for Engine {
    async fn lease(
        &self,
        worker: &str,
        types: &[String],
        max: usize,
        wait: Duration,
        lease_duration: Duration,
    ) -> Result<Vec<Assignment>, BackendError> {
        let request = LeaseRequest {
            worker: worker.to_string(),
            types: types.to_vec(),
            max_operations: max,
            wait,
            lease_duration,
            projects: None,
        };
        let leased = Engine::lease(self, request).await.map_err(engine_error)?;
        Ok(leased
            .into_iter()
            .map(|(op, payload)| Assignment {
                lease_id: op.lease.expect("leased operations hold a lease").id,
                name: op.name,
                op_type: op.op_type,
                payload,
                concurrency_key: op.concurrency_key,
            })
            .collect())
    }

    async fn heartbeat(
        &self,
        a: &Assignment,
        report: Report,
        wait_for_cancel: Duration,
    ) -> Result<bool, BackendError> {
        let beat = Engine::heartbeat(self, &a.name, &a.lease_id, report, Some(wait_for_cancel))
            .await
            .map_err(engine_error)?;
        Ok(beat.cancel_requested)
    }

    async fn complete(
        &self,
        a: &Assignment,
        result: Result<Value, Status>,
    ) -> Result<(), BackendError> {
        Engine::complete(self, &a.name, &a.lease_id, result)
            .await
            .map_err(engine_error)?;
        Ok(())
    }

    async fn release(&self, a: &Assignment) -> Result<(), BackendError> {
        Engine::release(self, &a.name, &a.lease_id)
            .await
            .map_err(engine_error)?;
        Ok(())
    }

    async fn submit_child(&self, parent: &Name, child: &Child) -> Result<Name, BackendError> {
        let submission = Submission {
            op_type: child.op_type.clone(),
            description: child.description.clone(),
            operation_id: child.operation_id.clone(),
            payload: Some(child.body(parent)["payload"].take()),
            parent: Some(parent.clone()),
            ..Submission::default()
        };
        let op = Engine::submit(self, &parent.project(), submission)
            .await
            .map_err(refused)?;
        Ok(op.name)
    }

    async fn wait(&self, name: &Name, timeout: Duration) -> Result<State, BackendError> {
        let op = Engine::wait(self, name, Some(timeout))
            .await
            .map_err(refused)?;
        Ok(op.state)
    }
}

/// The state in a wire Operation's metadata.
fn wire_state(op: &Value) -> Result<State, BackendError> {
    op["metadata"]["state"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| BackendError::Transient(format!("an operation without a state: {op}")))
}

/// A REST error as a child call sees it: 5xx, 429 and transport errors are worth retrying.
fn api_refused(e: longrun_client::Error) -> BackendError {
    match e {
        longrun_client::Error::Api {
            http_status,
            status_name,
            message,
            ..
        } if http_status < 500 && http_status != 429 => BackendError::Refused {
            // The envelope's `code` is the HTTP status; `status` names the google.rpc code.
            code: longrun_types::Code::ALL
                .into_iter()
                .find(|c| c.name() == status_name)
                .map_or(longrun_types::Code::Unknown as i32, |c| c as i32),
            message,
        },
        other => BackendError::Transient(other.to_string()),
    }
}

/// The REST worker API of a server (docs/workers.md).
pub struct HttpBackend {
    client: Client,
}

impl HttpBackend {
    /// `base` is the server URL, e.g. `http://127.0.0.1:8080`.
    pub fn new(base: &str) -> HttpBackend {
        HttpBackend {
            client: Client::new(base),
        }
    }

    /// `new`, over `https://` trusting and showing what `tls` says (a private CA, a client
    /// certificate). Errors: a file of `tls` that cannot be used.
    pub fn with_tls(
        base: &str,
        tls: &longrun_client::Tls,
    ) -> Result<HttpBackend, longrun_client::Error> {
        Ok(HttpBackend {
            client: Client::with_tls(base, tls)?,
        })
    }

    /// Sends `Authorization: Bearer TOKEN` with every call, for a server in auth mode
    /// `oauth` (the token's member needs `roles/longrun.worker`).
    pub fn with_token(self, token: &str) -> HttpBackend {
        HttpBackend {
            client: self.client.with_token(token),
        }
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, BackendError> {
        self.client
            .call(http::Method::POST, path, Some(body))
            .await
            .map_err(|e| match e {
                longrun_client::Error::Api {
                    http_status: 404 | 409,
                    ..
                } => BackendError::LeaseLost,
                other => BackendError::Transient(other.to_string()),
            })
    }
}

#[async_trait]
impl Backend for HttpBackend {
    async fn lease(
        &self,
        worker: &str,
        types: &[String],
        max: usize,
        wait: Duration,
        lease_duration: Duration,
    ) -> Result<Vec<Assignment>, BackendError> {
        let body = json!({
            "types": types,
            "maxOperations": max,
            "waitTimeout": duration::format(wait),
            "leaseDuration": duration::format(lease_duration),
        });
        let answer = self
            .post(&format!("/v1/workers/{worker}:lease"), &body)
            .await
            .map_err(|e| match e {
                BackendError::LeaseLost => BackendError::Transient("lease request refused".into()),
                other => other,
            })?;
        let leases = answer["leases"].as_array().cloned().unwrap_or_default();
        leases
            .into_iter()
            .map(|lease| {
                let name = lease["operation"]["name"].as_str().unwrap_or_default();
                Ok(Assignment {
                    name: Name::parse(name).map_err(|e| BackendError::Transient(e.into()))?,
                    op_type: lease["operation"]["metadata"]["type"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    lease_id: lease["leaseId"].as_str().unwrap_or_default().to_string(),
                    payload: lease["payload"].clone(),
                    concurrency_key: lease["operation"]["metadata"]["concurrencyKey"]
                        .as_str()
                        .map(str::to_string),
                })
            })
            .collect()
    }

    async fn heartbeat(
        &self,
        a: &Assignment,
        report: Report,
        wait_for_cancel: Duration,
    ) -> Result<bool, BackendError> {
        let mut body =
            json!({"leaseId": a.lease_id, "waitForCancel": duration::format(wait_for_cancel)});
        if let Some(progress) = report.progress {
            body["progress"] = json!(progress);
        }
        if let Some(stages) = report.stages {
            body["stages"] = stages
                .iter()
                .map(|s| {
                    json!({"displayName": s.display_name, "description": s.description,
                           "completeWorkUnits": s.complete_work_units.to_string(),
                           "totalWorkUnits": s.total_work_units.to_string()})
                })
                .collect();
        }
        if let Some(uris) = report.destination_uris {
            body["destinationUris"] = json!(uris);
        }
        if let Some(usage) = report.batch_eecu_usage_seconds {
            body["batchEecuUsageSeconds"] = json!(usage);
        }
        let answer = self
            .post(&format!("/v1/{}:heartbeat", a.name), &body)
            .await?;
        Ok(answer["cancelRequested"].as_bool().unwrap_or(false))
    }

    async fn complete(
        &self,
        a: &Assignment,
        result: Result<Value, Status>,
    ) -> Result<(), BackendError> {
        let mut body = match result {
            Ok(response) => json!({"leaseId": a.lease_id, "response": response}),
            Err(status) => json!({"leaseId": a.lease_id, "error": status}),
        };
        let size = serde_json::to_vec(&body).map_or(0, |b| b.len());
        if size > MAX_REQUEST_BODY {
            body = json!({"leaseId": a.lease_id, "error": too_large(size, MAX_REQUEST_BODY)});
        }
        self.post(&format!("/v1/{}:complete", a.name), &body)
            .await?;
        Ok(())
    }

    async fn release(&self, a: &Assignment) -> Result<(), BackendError> {
        self.post(
            &format!("/v1/{}:release", a.name),
            &json!({"leaseId": a.lease_id}),
        )
        .await?;
        Ok(())
    }

    async fn submit_child(&self, parent: &Name, child: &Child) -> Result<Name, BackendError> {
        let op = self
            .client
            .submit(parent.project().as_str(), &child.body(parent))
            .await
            .map_err(api_refused)?;
        op["name"]
            .as_str()
            .and_then(|n| Name::parse(n).ok())
            .ok_or_else(|| BackendError::Transient(format!("a submit answered {op}")))
    }

    async fn wait(&self, name: &Name, timeout: Duration) -> Result<State, BackendError> {
        let op = self
            .client
            .wait(name, Some(timeout))
            .await
            .map_err(api_refused)?;
        wire_state(&op)
    }
}

/// Largest request body the REST API accepts, in bytes (1 MiB; 413 beyond).
pub const MAX_REQUEST_BODY: usize = 1 << 20;

/// The error an operation ends with when its result cannot be sent: it would pass the
/// server's limit on one message (`size` and `limit` in bytes), so sending it again would
/// fail again.
pub(crate) fn too_large(size: usize, limit: usize) -> Status {
    Status::new(
        longrun_types::Code::ResourceExhausted,
        format!(
            "The result is {size} bytes, over the server's limit of {limit} bytes for one message; \
             keep large results elsewhere (a destination URI) and return a reference."
        ),
    )
}
