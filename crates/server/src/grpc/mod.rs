//! The gRPC adapter: `google.longrunning.Operations`, and longrun's `Submissions` and
//! `Workers` (with the `Work` stream that pushes cancellations), served on the REST
//! listener (HTTP/2 without TLS). Every call goes through the same authentication, the same
//! call table (`calls::Route::meta` of the equivalent REST route) and the same engine
//! calls as REST: only the encoding differs.

mod convert;
mod queues;
mod schedules;
mod watch;
mod work;

use crate::auth::Caller;
use crate::calls::{App, Route};
use crate::kit::error::ApiError;
use crate::kit::names::{invalid_name, operation_name, project_of};
use crate::workers::{self, completion};
use longrun_engine::{Report, Submission};
use longrun_proto::google::longrunning as lro;
use longrun_proto::google::longrunning::operations_server::{Operations, OperationsServer};
use longrun_proto::longrun::v1 as pb;
use longrun_proto::longrun::v1::submissions_server::{Submissions, SubmissionsServer};
use longrun_proto::longrun::v1::workers_server::{Workers, WorkersServer};
use longrun_proto::report;
use longrun_types::{Name, Project};
use std::time::Duration;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

/// The gRPC services' shared state: the REST app's.
#[derive(Clone)]
pub struct Grpc {
    app: App,
}

fn name(text: &str) -> Result<Name, Status> {
    Name::parse(text).map_err(|e| convert::error(invalid_name(e)))
}

fn project(text: &str) -> Result<Project, Status> {
    let id = text.strip_prefix("projects/").ok_or_else(|| {
        convert::error(ApiError::invalid(
            "INVALID_NAME",
            format!("`{text}` is not a project name projects/PROJECT"),
        ))
    })?;
    project_of(id).map_err(convert::error)
}

/// A submit request as the engine takes it (its `parent` is the caller's to check).
fn submission(r: pb::SubmitOperationRequest) -> Result<Submission, ApiError> {
    let nonempty = |s: String| (!s.is_empty()).then_some(s);
    Ok(Submission {
        op_type: r.r#type,
        description: r.description,
        priority: r.priority.map(i64::from),
        request_id: nonempty(r.request_id),
        operation_id: nonempty(r.operation_id),
        payload: r.payload.as_ref().map(convert::from_value),
        script_uri: r.script_uri,
        destination_uris: r.destination_uris,
        max_attempts: r.max_attempts.map(i64::from),
        timeout: convert::duration("timeout", r.timeout)?,
        concurrency_key: nonempty(r.concurrency_key),
        schedule_time: r.schedule_time.map(convert::time),
        start_timeout: convert::duration("startTimeout", r.start_timeout)?,
        parent: nonempty(r.parent_operation)
            .map(|p| operation_name("parentOperation", &p))
            .transpose()?,
        ..Default::default()
    })
}

/// What is left of the caller's deadline (`grpc-timeout`), less a margin for the answer
/// to travel back.
fn budget(metadata: &MetadataMap) -> Option<Duration> {
    let text = metadata.get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = text.split_at(text.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    let timeout = match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    let margin = (timeout / 10).min(Duration::from_millis(100));
    Some(timeout.saturating_sub(margin))
}

/// What a call carries beside its message: its metadata, and its connection's extensions
/// (a verified client certificate, `tls::PeerCertificate`).
pub(crate) type Sent = (MetadataMap, tonic::Extensions);

impl Grpc {
    pub fn new(app: App) -> Grpc {
        Grpc { app }
    }

    /// The caller, once their token holds and they may do what `route` does.
    async fn authorize(&self, sent: &Sent, route: &Route) -> Result<Caller, Status> {
        let caller = self.authenticate(sent).await?;
        self.app
            .authorize(&caller, &route.meta())
            .await
            .map_err(convert::error)?;
        Ok(caller)
    }

    async fn authenticate(&self, (metadata, extensions): &Sent) -> Result<Caller, Status> {
        // With auth off nothing is read: spare the copy of the metadata.
        let headers = if self.app.auth.enabled() {
            metadata.clone().into_headers()
        } else {
            http::HeaderMap::new()
        };
        let peer = extensions.get::<crate::tls::PeerCertificate>();
        self.app
            .auth
            .authenticate(&headers, None, peer)
            .await
            .map_err(convert::error)
    }

    /// A lease; its wait for work also ends when `stop` resolves ([`Engine::lease_until`]).
    ///
    /// [`Engine::lease_until`]: longrun_engine::Engine::lease_until
    pub(crate) async fn lease(
        &self,
        caller: &Caller,
        r: pb::LeaseRequest,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<pb::LeaseResponse, Status> {
        let projects = self.app.auth.lease_scope(caller).map_err(convert::error)?;
        let wait = convert::duration("waitTimeout", r.wait_timeout).map_err(convert::error)?;
        let lease_duration =
            convert::duration("leaseDuration", r.lease_duration).map_err(convert::error)?;
        let request = workers::lease_request(
            r.worker,
            r.types,
            Some(r.max_operations.into()),
            wait,
            lease_duration,
            projects,
        )
        .map_err(convert::error)?;
        let leased = self
            .app
            .engine
            .lease_until(request, stop)
            .await
            .map_err(convert::engine_error)?;
        Ok(pb::LeaseResponse {
            leases: leased
                .iter()
                .map(|(op, payload)| {
                    let lease = op.lease.as_ref().expect("leased operations hold a lease");
                    pb::Lease {
                        operation: Some(convert::operation(&self.app.types, op)),
                        lease_id: lease.id.clone(),
                        lease_expire_time: Some(convert::timestamp(lease.expire_time)),
                        payload: Some(convert::to_value(payload)),
                    }
                })
                .collect(),
        })
    }

    /// A heartbeat; `wait` says whether to honour its `wait_for_cancel`.
    pub(crate) async fn heartbeat(
        &self,
        caller: &Caller,
        r: pb::HeartbeatRequest,
        wait: bool,
    ) -> Result<pb::HeartbeatResponse, Status> {
        let name = name(&r.name)?;
        self.check(caller, &Route::Heartbeat(name.clone()))?;
        let report = Report {
            progress: r.progress,
            stages: r
                .set_stages
                .then(|| r.stages.into_iter().map(report::stage_from).collect()),
            batch_eecu_usage_seconds: r.batch_eecu_usage_seconds,
            notifications: r.set_notifications.then(|| {
                r.notifications
                    .into_iter()
                    .map(report::notification_from)
                    .collect()
            }),
            destination_uris: r.set_destination_uris.then_some(r.destination_uris),
        };
        let wait_for_cancel = if wait {
            convert::duration("waitForCancel", r.wait_for_cancel).map_err(convert::error)?
        } else {
            None
        };
        let beat = self
            .app
            .engine
            .heartbeat(&name, &r.lease_id, report, wait_for_cancel)
            .await
            .map_err(convert::engine_error)?;
        Ok(pb::HeartbeatResponse {
            cancel_requested: beat.cancel_requested,
            lease_expire_time: Some(convert::timestamp(beat.lease_expire_time)),
        })
    }

    pub(crate) async fn complete(
        &self,
        caller: &Caller,
        r: pb::CompleteRequest,
    ) -> Result<lro::Operation, Status> {
        let name = name(&r.name)?;
        self.check(caller, &Route::Complete(name.clone()))?;
        let result = match r.result {
            Some(pb::complete_request::Result::Response(value)) => Ok(completion::response(
                &self.app.types,
                convert::from_value(&value),
            )
            .map_err(convert::error)?),
            Some(pb::complete_request::Result::Error(status)) => {
                Err(completion::status_from_grpc(&self.app.types, status)
                    .map_err(convert::error)?)
            }
            None => {
                return Err(convert::error(ApiError::invalid(
                    "INVALID_REQUEST_BODY",
                    "a completion carries exactly one of response and error",
                )));
            }
        };
        let op = self
            .app
            .engine
            .complete(&name, &r.lease_id, result)
            .await
            .map_err(convert::engine_error)?;
        Ok(convert::operation(&self.app.types, &op))
    }

    pub(crate) async fn release(
        &self,
        caller: &Caller,
        r: pb::ReleaseRequest,
    ) -> Result<lro::Operation, Status> {
        let name = name(&r.name)?;
        self.check(caller, &Route::Release(name.clone()))?;
        let op = self
            .app
            .engine
            .release(&name, &r.lease_id)
            .await
            .map_err(convert::engine_error)?;
        Ok(convert::operation(&self.app.types, &op))
    }

    /// The permission check alone, for calls on a stream already authenticated.
    fn check(&self, caller: &Caller, route: &Route) -> Result<(), Status> {
        self.app
            .check(caller, &route.meta())
            .map_err(convert::error)
    }
}

#[tonic::async_trait]
impl Operations for Grpc {
    async fn list_operations(
        &self,
        request: Request<lro::ListOperationsRequest>,
    ) -> Result<Response<lro::ListOperationsResponse>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        let project = project(&r.name)?;
        self.authorize(&metadata, &Route::List(project.clone()))
            .await?;
        if r.return_partial_success {
            return Err(convert::error(ApiError::partial_success_unsupported()));
        }
        let page = self
            .app
            .engine
            .list(&project, &r.filter, r.page_size.into(), &r.page_token)
            .await
            .map_err(convert::engine_error)?;
        Ok(Response::new(lro::ListOperationsResponse {
            operations: page
                .operations
                .iter()
                .map(|op| convert::operation(&self.app.types, op))
                .collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
            unreachable: Vec::new(),
        }))
    }

    async fn get_operation(
        &self,
        request: Request<lro::GetOperationRequest>,
    ) -> Result<Response<lro::Operation>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        let name = name(&r.name)?;
        self.authorize(&metadata, &Route::Get(name.clone())).await?;
        let op = self
            .app
            .engine
            .get(&name)
            .await
            .map_err(convert::engine_error)?;
        Ok(Response::new(convert::operation(&self.app.types, &op)))
    }

    async fn delete_operation(
        &self,
        request: Request<lro::DeleteOperationRequest>,
    ) -> Result<Response<()>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        let name = name(&r.name)?;
        let caller = self
            .authorize(&metadata, &Route::Delete(name.clone()))
            .await?;
        crate::outputs::delete(
            &self.app.engine,
            &self.app.outputs_dir,
            &caller.member(),
            &name,
        )
        .await
        .map_err(convert::error)?;
        Ok(Response::new(()))
    }

    async fn cancel_operation(
        &self,
        request: Request<lro::CancelOperationRequest>,
    ) -> Result<Response<()>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        let name = name(&r.name)?;
        let caller = self
            .authorize(&metadata, &Route::Cancel(name.clone()))
            .await?;
        self.app
            .engine
            .cancel(&name, &caller.member())
            .await
            .map_err(convert::engine_error)?;
        Ok(Response::new(()))
    }

    async fn wait_operation(
        &self,
        request: Request<lro::WaitOperationRequest>,
    ) -> Result<Response<lro::Operation>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        let name = name(&r.name)?;
        self.authorize(&metadata, &Route::Wait(name.clone()))
            .await?;
        let timeout = convert::duration("timeout", r.timeout).map_err(convert::error)?;
        let op = self
            .app
            .engine
            .wait_within(&name, timeout, budget(&metadata.0))
            .await
            .map_err(convert::engine_error)?;
        Ok(Response::new(convert::operation(&self.app.types, &op)))
    }
}

#[tonic::async_trait]
impl Submissions for Grpc {
    async fn submit_operation(
        &self,
        request: Request<pb::SubmitOperationRequest>,
    ) -> Result<Response<lro::Operation>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        let project = project(&r.parent)?;
        self.authorize(&metadata, &Route::Submit(project.clone()))
            .await?;
        let op = self
            .app
            .engine
            .submit(&project, submission(r).map_err(convert::error)?)
            .await
            .map_err(convert::engine_error)?;
        Ok(Response::new(convert::operation(&self.app.types, &op)))
    }

    async fn batch_submit_operations(
        &self,
        request: Request<pb::BatchSubmitOperationsRequest>,
    ) -> Result<Response<pb::BatchSubmitOperationsResponse>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        let project = project(&r.parent)?;
        self.authorize(&metadata, &Route::BatchSubmit(project.clone()))
            .await?;
        let submissions = r
            .requests
            .into_iter()
            .enumerate()
            .map(|(i, one)| {
                let named = |e: ApiError| convert::error(e.in_batch(i));
                if !one.parent.is_empty() && one.parent != r.parent {
                    return Err(named(ApiError::invalid(
                        "INVALID_SUBMISSION",
                        format!("parent must be empty or {}", r.parent),
                    )));
                }
                submission(one).map_err(named)
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let ops = self
            .app
            .engine
            .submit_batch(&project, submissions)
            .await
            .map_err(convert::engine_error)?;
        Ok(Response::new(pb::BatchSubmitOperationsResponse {
            operations: ops
                .iter()
                .map(|op| convert::operation(&self.app.types, op))
                .collect(),
        }))
    }

    async fn retry_operation(
        &self,
        request: Request<pb::RetryOperationRequest>,
    ) -> Result<Response<lro::Operation>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        let name = name(&r.name)?;
        self.authorize(&metadata, &Route::Retry(name.clone()))
            .await?;
        let nonempty = |s: String| (!s.is_empty()).then_some(s);
        let retry = longrun_engine::Retry {
            operation_id: nonempty(r.operation_id),
            request_id: nonempty(r.request_id),
        };
        let op = self
            .app
            .engine
            .retry(&name, retry)
            .await
            .map_err(convert::engine_error)?;
        Ok(Response::new(convert::operation(&self.app.types, &op)))
    }

    async fn batch_retry_operations(
        &self,
        request: Request<pb::BatchRetryOperationsRequest>,
    ) -> Result<Response<lro::Operation>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        let project = project(&r.parent)?;
        self.authorize(&metadata, &Route::BatchRetry(project.clone()))
            .await?;
        let op = crate::bulk::retry::submit(&self.app.engine, &project, r.filter)
            .await
            .map_err(convert::error)?;
        Ok(Response::new(convert::operation(&self.app.types, &op)))
    }
}

#[tonic::async_trait]
impl Workers for Grpc {
    async fn lease(
        &self,
        request: Request<pb::LeaseRequest>,
    ) -> Result<Response<pb::LeaseResponse>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        let caller = self.authenticate(&metadata).await?;
        Ok(Response::new(
            Grpc::lease(self, &caller, r, std::future::pending()).await?,
        ))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        let caller = self.authenticate(&metadata).await?;
        Ok(Response::new(
            Grpc::heartbeat(self, &caller, r, true).await?,
        ))
    }

    async fn complete(
        &self,
        request: Request<pb::CompleteRequest>,
    ) -> Result<Response<lro::Operation>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        let caller = self.authenticate(&metadata).await?;
        Ok(Response::new(Grpc::complete(self, &caller, r).await?))
    }

    async fn release(
        &self,
        request: Request<pb::ReleaseRequest>,
    ) -> Result<Response<lro::Operation>, Status> {
        let (metadata, extensions, r) = request.into_parts();
        let metadata = (metadata, extensions);
        let caller = self.authenticate(&metadata).await?;
        Ok(Response::new(Grpc::release(self, &caller, r).await?))
    }

    type WorkStream = work::Outbound;

    async fn work(
        &self,
        request: Request<tonic::Streaming<pb::WorkRequest>>,
    ) -> Result<Response<Self::WorkStream>, Status> {
        let (metadata, extensions, inbound) = request.into_parts();
        let metadata = (metadata, extensions);
        let caller = self.authenticate(&metadata).await?;
        let mut response = Response::new(work::serve(self.clone(), caller, inbound));
        response.metadata_mut().insert(
            longrun_proto::MAX_MESSAGE_BYTES_HEADER,
            longrun_proto::MAX_MESSAGE_BYTES.into(),
        );
        Ok(response)
    }
}

/// Adds the gRPC services to the router that serves REST: each at its `/{service}/*`
/// path, with the standard health service and server reflection.
/// The API's services, by full name, each at `/{service}/{method}` (and reported SERVING
/// by the health service).
const API_SERVICES: &[&str] = &[
    "google.longrunning.Operations",
    "longrun.v1.Submissions",
    "longrun.v1.Operations",
    "longrun.v1.Workers",
    "longrun.v1.Schedules",
    "longrun.v1.Queues",
];

/// The services served beside them: health and reflection.
const TOOL_SERVICES: &[&str] = &[
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

/// The `service/Method` a gRPC request path names, when it is a method this server serves
/// (read from the services' descriptors); `None` for any other path. Metrics label the
/// rest `unknown`, so a caller cannot add series by making paths up.
pub(crate) fn served_method(path: &str) -> Option<&'static str> {
    static METHODS: std::sync::OnceLock<std::collections::HashSet<String>> =
        std::sync::OnceLock::new();
    let methods = METHODS.get_or_init(|| {
        use prost::Message;
        [
            longrun_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
            tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
        ]
        .into_iter()
        .flat_map(|bytes| {
            prost_types::FileDescriptorSet::decode(bytes)
                .expect("the descriptors compiled into the binary decode")
                .file
        })
        .flat_map(|file| {
            let package = file.package().to_string();
            file.service.into_iter().flat_map(move |service| {
                let name = format!("{package}.{}", service.name());
                service
                    .method
                    .into_iter()
                    .map(move |method| format!("{name}/{}", method.name()))
            })
        })
        .filter(|method| {
            let service = method.split_once('/').map_or("", |(service, _)| service);
            API_SERVICES.contains(&service) || TOOL_SERVICES.contains(&service)
        })
        .collect()
    });
    methods
        .get(path.strip_prefix('/').unwrap_or(path))
        .map(String::as_str)
}

/// The answer to a gRPC call of a service this server does not serve: UNIMPLEMENTED, as a
/// gRPC status (trailers-only), which is what the caller's client reports. (A method
/// unknown to a served service is answered the same way by that service.)
pub fn unimplemented(path: &str) -> axum::response::Response {
    Status::unimplemented(format!("no service serves {path}")).into_http()
}

pub fn routes(router: axum::Router, app: App) -> anyhow::Result<axum::Router> {
    let grpc = Grpc::new(app);
    let (health_reporter, health) = tonic_health::server::health_reporter();
    for service in [""].iter().chain(API_SERVICES) {
        // The reporter starts out empty; setting a status only fails once it is dropped.
        let reporter = health_reporter.clone();
        tokio::spawn(async move {
            reporter
                .set_service_status(service, tonic_health::ServingStatus::Serving)
                .await;
        });
    }
    // Reflection in both versions tools ask for (grpcurl, grpcui, Postman); like health,
    // it needs no credentials: it describes the API and holds no data.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(longrun_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    Ok(router
        .route_service(
            "/google.longrunning.Operations/{*rest}",
            OperationsServer::new(grpc.clone()),
        )
        .route_service(
            "/longrun.v1.Submissions/{*rest}",
            SubmissionsServer::new(grpc.clone()),
        )
        .route_service(
            "/longrun.v1.Operations/{*rest}",
            pb::operations_server::OperationsServer::new(grpc.clone()),
        )
        .route_service(
            "/longrun.v1.Schedules/{*rest}",
            pb::schedules_server::SchedulesServer::new(grpc.clone()),
        )
        .route_service(
            "/longrun.v1.Queues/{*rest}",
            pb::queues_server::QueuesServer::new(grpc.clone()),
        )
        .route_service(
            "/longrun.v1.Workers/{*rest}",
            WorkersServer::new(grpc).max_decoding_message_size(longrun_proto::MAX_MESSAGE_BYTES),
        )
        .route_service("/grpc.health.v1.Health/{*rest}", health)
        .route_service(
            "/grpc.reflection.v1.ServerReflection/{*rest}",
            reflection().build_v1()?,
        )
        .route_service(
            "/grpc.reflection.v1alpha.ServerReflection/{*rest}",
            reflection().build_v1alpha()?,
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_timeout(value: &str) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        metadata.insert("grpc-timeout", value.parse().unwrap());
        metadata
    }

    #[test]
    fn the_budget_is_the_callers_deadline_less_a_margin() {
        let budget = |v: &str| budget(&with_timeout(v));
        assert_eq!(budget("100m"), Some(Duration::from_millis(90)));
        assert_eq!(budget("5S"), Some(Duration::from_millis(4900)));
        assert_eq!(budget("2M"), Some(Duration::from_millis(119_900)));
        assert_eq!(budget("1H"), Some(Duration::from_millis(3_599_900)));
        assert_eq!(budget("500u"), Some(Duration::from_micros(450)));
        for bad in ["", "S", "10", "10x", "-5S", "1.5S"] {
            assert_eq!(budget(bad), None, "{bad:?}");
        }
        assert_eq!(super::budget(&MetadataMap::new()), None);
    }
}
