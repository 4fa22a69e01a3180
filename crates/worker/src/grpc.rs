//! The gRPC backend: every call on one `Work` stream, on which the server pushes a
//! cancellation the moment it is requested, so `ctx.cancelled()` fires without waiting
//! for the next heartbeat. A broken stream is reopened on the next call; leases survive it.

use crate::backend::{Assignment, Backend, BackendError, Child};
use async_trait::async_trait;
use longrun_engine::Report;
use longrun_proto::google::earthengine::v1 as ee;
use longrun_proto::google::rpc;
use longrun_proto::json::{from_value, to_struct, to_value};
use longrun_proto::longrun::v1 as pb;
use longrun_proto::longrun::v1::workers_client::WorkersClient;
use longrun_proto::report as messages;
use longrun_types::operation::Status;
use longrun_types::{Name, State};
use pb::work_request::Call;
use pb::work_response::Answer;
use prost::Message;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tonic::transport::{Channel, Endpoint};

/// The worker service of a server, over gRPC.
pub struct GrpcBackend {
    channel: Channel,
    authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    link: tokio::sync::Mutex<Option<Arc<Link>>>,
}

/// One open `Work` stream: the sending half, and what its reader shares. Dropping the
/// backend drops the sender, which ends the stream.
struct Link {
    calls: mpsc::Sender<pb::WorkRequest>,
    next_id: AtomicU64,
    shared: Arc<Shared>,
}

struct Shared {
    pending: Mutex<HashMap<u64, oneshot::Sender<Answer>>>,
    /// Lease ids whose cancellation the server pushed; `pushed` counts pushes.
    cancelled: Mutex<HashSet<String>>,
    pushed: watch::Sender<u64>,
    closed: AtomicBool,
}

fn transient(e: impl std::fmt::Display) -> BackendError {
    BackendError::Transient(e.to_string())
}

impl GrpcBackend {
    /// `message` as a request with this backend's credentials.
    fn authorized<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        request
    }

    /// `base` is the server URL, e.g. `http://127.0.0.1:8080` (gRPC shares the REST port).
    /// Connects on first use.
    pub fn new(base: &str) -> Result<GrpcBackend, BackendError> {
        GrpcBackend::with_tls(base, &longrun_client::Tls::default())
    }

    /// `new`; over `https://` trusting the public roots and `tls.ca_file`, and showing
    /// `tls.client_cert` to a server that requires one. Errors: `Refused` (code 3) for a
    /// file of `tls` that cannot be read.
    pub fn with_tls(base: &str, tls: &longrun_client::Tls) -> Result<GrpcBackend, BackendError> {
        use tonic::transport::{Certificate, ClientTlsConfig, Identity};
        let mut endpoint = Endpoint::from_shared(base.to_string())
            .map_err(transient)?
            .tcp_nodelay(true);
        if base.starts_with("https://") {
            let read = |path: &std::path::Path| {
                std::fs::read(path).map_err(|e| BackendError::Refused {
                    code: 3,
                    message: format!("cannot read {}: {e}", path.display()),
                })
            };
            let mut config = ClientTlsConfig::new().with_webpki_roots();
            if let Some(ca) = &tls.ca_file {
                config = config.ca_certificate(Certificate::from_pem(read(ca)?));
            }
            if let Some((cert, key)) = &tls.client_cert {
                config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            endpoint = endpoint
                .tls_config(config)
                .map_err(|e| BackendError::Refused {
                    code: 3,
                    message: format!("the TLS settings are unusable: {e}"),
                })?;
        }
        let channel = endpoint.connect_lazy();
        Ok(GrpcBackend {
            channel,
            authorization: None,
            link: tokio::sync::Mutex::new(None),
        })
    }

    /// Sends `authorization: Bearer TOKEN`, for a server in auth mode `oauth`.
    pub fn with_token(mut self, token: &str) -> GrpcBackend {
        self.authorization = format!("Bearer {token}").parse().ok();
        self
    }

    async fn link(&self) -> Result<Arc<Link>, BackendError> {
        let mut held = self.link.lock().await;
        if let Some(link) = held
            .as_ref()
            .filter(|l| !l.shared.closed.load(Ordering::Acquire))
        {
            return Ok(link.clone());
        }
        let (calls, outbound) = mpsc::channel(256);
        let mut request =
            tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(outbound));
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        let mut inbound = WorkersClient::new(self.channel.clone())
            .work(request)
            .await
            .map_err(transient)?
            .into_inner();
        let link = Arc::new(Link {
            calls,
            next_id: AtomicU64::new(1),
            shared: Arc::new(Shared {
                pending: Mutex::new(HashMap::new()),
                cancelled: Mutex::new(HashSet::new()),
                pushed: watch::channel(0).0,
                closed: AtomicBool::new(false),
            }),
        });
        let reader = link.shared.clone();
        tokio::spawn(async move {
            while let Ok(Some(response)) = inbound.message().await {
                match response.answer {
                    Some(Answer::Cancel(c)) if response.id == 0 => {
                        reader.cancelled.lock().unwrap().insert(c.lease_id);
                        reader.pushed.send_modify(|n| *n += 1);
                    }
                    Some(answer) => {
                        let waiting = reader.pending.lock().unwrap().remove(&response.id);
                        if let Some(waiting) = waiting {
                            let _ = waiting.send(answer);
                        }
                    }
                    None => {}
                }
            }
            // Calls still waiting get an error; the next call opens a new stream.
            reader.closed.store(true, Ordering::Release);
            reader.pending.lock().unwrap().clear();
            reader.pushed.send_modify(|n| *n += 1);
        });
        *held = Some(link.clone());
        Ok(link)
    }

    async fn call(&self, call: Call) -> Result<(Arc<Link>, Answer), BackendError> {
        let link = self.link().await?;
        let id = link.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        link.shared.pending.lock().unwrap().insert(id, tx);
        // The reader marks the stream closed before it drops the calls waiting: a call
        // registered after that sees the mark.
        if link.shared.closed.load(Ordering::Acquire) {
            link.shared.pending.lock().unwrap().remove(&id);
            return Err(transient("the work stream closed"));
        }
        let request = pb::WorkRequest {
            id,
            call: Some(call),
        };
        if link.calls.send(request).await.is_err() {
            link.shared.closed.store(true, Ordering::Release);
            return Err(transient("the work stream closed"));
        }
        let answer = rx.await.map_err(|_| transient("the work stream closed"))?;
        match answer {
            Answer::Error(status) => Err(match tonic::Code::from_i32(status.code) {
                tonic::Code::Aborted | tonic::Code::NotFound => BackendError::LeaseLost,
                _ => transient(format!("{} (code {})", status.message, status.code)),
            }),
            answer => Ok((link, answer)),
        }
    }
}

fn duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(d).unwrap_or_default()
}

fn unexpected(answer: &Answer) -> BackendError {
    transient(format!("unexpected answer on the work stream: {answer:?}"))
}

#[async_trait]
impl Backend for GrpcBackend {
    async fn lease(
        &self,
        worker: &str,
        types: &[String],
        max: usize,
        wait: Duration,
        lease_duration: Duration,
    ) -> Result<Vec<Assignment>, BackendError> {
        let call = Call::Lease(pb::LeaseRequest {
            worker: worker.to_string(),
            types: types.to_vec(),
            max_operations: max as i32,
            wait_timeout: Some(duration(wait)),
            lease_duration: Some(duration(lease_duration)),
        });
        let answer = match self.call(call).await {
            Err(BackendError::LeaseLost) => return Err(transient("lease request refused")),
            other => other?.1,
        };
        let Answer::Lease(leased) = answer else {
            return Err(unexpected(&answer));
        };
        leased
            .leases
            .into_iter()
            .map(|lease| {
                let op = lease.operation.unwrap_or_default();
                let metadata = op
                    .metadata
                    .and_then(|any| ee::OperationMetadata::decode(any.value.as_slice()).ok())
                    .unwrap_or_default();
                Ok(Assignment {
                    name: Name::parse(&op.name).map_err(transient)?,
                    op_type: metadata.r#type,
                    lease_id: lease.lease_id,
                    payload: lease.payload.as_ref().map_or(Value::Null, from_value),
                    // Empty on the wire when there is none (proto3).
                    concurrency_key: Some(metadata.concurrency_key).filter(|k| !k.is_empty()),
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
        let call = Call::Heartbeat(pb::HeartbeatRequest {
            name: a.name.to_string(),
            lease_id: a.lease_id.clone(),
            progress: report.progress,
            set_stages: report.stages.is_some(),
            stages: report
                .stages
                .iter()
                .flatten()
                .map(messages::stage)
                .collect(),
            batch_eecu_usage_seconds: report.batch_eecu_usage_seconds,
            set_notifications: report.notifications.is_some(),
            notifications: report
                .notifications
                .iter()
                .flatten()
                .map(messages::notification)
                .collect(),
            set_destination_uris: report.destination_uris.is_some(),
            destination_uris: report.destination_uris.unwrap_or_default(),
            wait_for_cancel: None,
        });
        let (link, answer) = self.call(call).await?;
        let Answer::Heartbeat(beat) = answer else {
            return Err(unexpected(&answer));
        };
        if beat.cancel_requested {
            return Ok(true);
        }
        // The lease is extended; wait for a pushed cancellation, or the next beat.
        let shared = &link.shared;
        let mut pushed = shared.pushed.subscribe();
        let deadline = tokio::time::Instant::now() + wait_for_cancel;
        loop {
            if shared.cancelled.lock().unwrap().contains(&a.lease_id) {
                return Ok(true);
            }
            if shared.closed.load(Ordering::Acquire) {
                return Ok(false);
            }
            tokio::select! {
                changed = pushed.changed() => if changed.is_err() { return Ok(false) },
                _ = tokio::time::sleep_until(deadline) => return Ok(false),
            }
        }
    }

    async fn complete(
        &self,
        a: &Assignment,
        result: Result<Value, Status>,
    ) -> Result<(), BackendError> {
        let result = match result {
            Ok(response) => pb::complete_request::Result::Response(to_value(&response)),
            Err(status) => pb::complete_request::Result::Error(rpc::Status {
                code: status.code,
                message: status.message,
                details: status
                    .details
                    .iter()
                    .map(|d| prost_types::Any {
                        type_url: "type.googleapis.com/google.protobuf.Struct".into(),
                        value: to_struct(d).encode_to_vec(),
                    })
                    .collect(),
            }),
        };
        let mut request = pb::CompleteRequest {
            name: a.name.to_string(),
            lease_id: a.lease_id.clone(),
            result: Some(result),
        };
        // The call's envelope (id and field tags) needs a few bytes more than the request.
        let size = request.encoded_len() + 32;
        if size > longrun_proto::MAX_MESSAGE_BYTES {
            let status = crate::backend::too_large(size, longrun_proto::MAX_MESSAGE_BYTES);
            request.result = Some(pb::complete_request::Result::Error(rpc::Status {
                code: status.code,
                message: status.message,
                details: Vec::new(),
            }));
        }
        let (link, _) = self.call(Call::Complete(request)).await?;
        link.shared.cancelled.lock().unwrap().remove(&a.lease_id);
        Ok(())
    }

    async fn release(&self, a: &Assignment) -> Result<(), BackendError> {
        let call = Call::Release(pb::ReleaseRequest {
            name: a.name.to_string(),
            lease_id: a.lease_id.clone(),
        });
        let (link, _) = self.call(call).await?;
        link.shared.cancelled.lock().unwrap().remove(&a.lease_id);
        Ok(())
    }

    /// `StopLeasing` on the stream: the lease in flight is answered at once. A server that
    /// does not know the call answers an error, and the lease then ends with its wait.
    async fn stop_leasing(&self) {
        let stop = self.call(Call::StopLeasing(pb::StopLeasing {}));
        let _ = tokio::time::timeout(Duration::from_secs(5), stop).await;
    }

    /// `longrun.v1.Submissions/SubmitOperation`, beside the `Work` stream.
    async fn submit_child(&self, parent: &Name, child: &Child) -> Result<Name, BackendError> {
        let payload = if child.payload.is_null() {
            serde_json::json!({})
        } else {
            child.payload.clone()
        };
        let request = self.authorized(pb::SubmitOperationRequest {
            parent: format!("projects/{}", parent.project()),
            r#type: child.op_type.clone(),
            description: child.description.clone(),
            operation_id: child.operation_id.clone().unwrap_or_default(),
            payload: Some(to_value(&payload)),
            parent_operation: parent.to_string(),
            ..Default::default()
        });
        let op = pb::submissions_client::SubmissionsClient::new(self.channel.clone())
            .submit_operation(request)
            .await
            .map_err(status_refused)?
            .into_inner();
        Name::parse(&op.name).map_err(|e| transient(format!("{e:?}")))
    }

    /// `google.longrunning.Operations/WaitOperation`.
    async fn wait(&self, name: &Name, timeout: Duration) -> Result<State, BackendError> {
        use longrun_proto::google::longrunning as lro;
        let request = self.authorized(lro::WaitOperationRequest {
            name: name.to_string(),
            timeout: prost_types::Duration::try_from(timeout).ok(),
        });
        let op = lro::operations_client::OperationsClient::new(self.channel.clone())
            .wait_operation(request)
            .await
            .map_err(status_refused)?
            .into_inner();
        let metadata = op
            .metadata
            .ok_or_else(|| transient("an operation without metadata"))?;
        let metadata =
            ee::OperationMetadata::decode(metadata.value.as_slice()).map_err(transient)?;
        ee::operation_metadata::State::try_from(metadata.state)
            .ok()
            .and_then(|s| s.as_str_name().parse().ok())
            .ok_or_else(|| transient(format!("an operation in state {}", metadata.state)))
    }
}

/// A gRPC error as a child call sees it: `UNAVAILABLE`, `RESOURCE_EXHAUSTED` and the like
/// are worth retrying, the rest are refusals.
fn status_refused(status: tonic::Status) -> BackendError {
    use tonic::Code as C;
    match status.code() {
        C::Unavailable | C::ResourceExhausted | C::DeadlineExceeded | C::Internal | C::Unknown => {
            transient(status.message())
        }
        code => BackendError::Refused {
            code: code as i32,
            message: status.message().to_string(),
        },
    }
}
