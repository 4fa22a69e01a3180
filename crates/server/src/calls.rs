//! The call table: every call the API serves, as one [`Route`], and what each needs
//! ([`Route::meta`]: its method id, project, permission, registration gate and query
//! parameters), answered in one place for both adapters. REST resolves a request to a
//! `Route` once (`rest::route`, in the outermost layer) and gRPC builds the `Route` a method
//! equals; both then [`App::authorize`] it, so a permission or the gate is never decided
//! twice. [`App`] holds the handles the features take their parts from.

use crate::auth::iam::Permission;
use crate::auth::{Auth, Caller};
use crate::kit::error::ApiError;
use crate::kit::render::Version;
use crate::projects::Gate;
use longrun_engine::Engine;
use longrun_types::{Name, Project};
use std::borrow::Cow;
use std::sync::Arc;

/// What the adapters share: the handle of each feature.
#[derive(Clone)]
pub struct App {
    pub engine: Engine,
    pub auth: Auth,
    /// Where the command executor keeps output.
    pub outputs_dir: std::path::PathBuf,
    pub store: Arc<dyn longrun_store::Store>,
    /// The Earth Engine emulator (algorithm list, faults, assets, task starts).
    pub emulator: Arc<crate::emulator::Emulator>,
    /// Every change this server learns of, in order, for the watch stream.
    pub hub: Arc<crate::changes::watch::Hub>,
    /// Every metric series.
    pub metrics: Arc<crate::observe::metrics::Metrics>,
    /// `[projects]` (docs/projects.md).
    pub projects: Arc<crate::projects::Settings>,
    /// The message types a worker's response or an error detail may be.
    pub types: longrun_proto::any::Types,
    /// Schedules (docs/schedules.md): their rules and firing.
    pub schedules: longrun_engine::schedules::Scheduler,
}

/// A call of the API, resolved from a REST path or a gRPC method.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    Get(Name),
    Delete(Name),
    Cancel(Name),
    Wait(Name),
    List(Project),
    /// `GET …/operations:watch`: the server-sent event stream of changes.
    Watch(Project),
    /// `POST …/operations:batchCancel`: a bulk cancel job.
    BatchCancel(Project),
    Submit(Project),
    /// `POST …/operations:batchSubmit`: up to 1,000 submits in one durable write.
    BatchSubmit(Project),
    /// `POST …:retry`: a done operation queued again as a new one.
    Retry(Name),
    /// `POST …/operations:batchRetry`: a bulk retry job.
    BatchRetry(Project),
    /// A lease by the worker of this id.
    Lease(String),
    Heartbeat(Name),
    Complete(Name),
    /// `POST …:release`: a worker hands a leased operation back.
    Release(Name),
    Output(Name),
    /// `GET /v1/operationPayloads/{name}`: what the operation was submitted with.
    Payload(Name),
    /// An Earth Engine emulator method (algorithms, task starting, assets, not emulated).
    Emulator(Project, crate::emulator::Call),
    /// A projects method (the project config, the project's registry entry).
    Projects(Project, crate::projects::Call),
    ListAccounts(Project),
    CreateAccount(Project),
    /// Disable (true) or enable (false) an account.
    SetAccountDisabled(Project, String, bool),
    DeleteAccount(Project, String),
    /// `GET /{v}/projectRegistrations`: the project registry.
    ListRegistrations,
    /// A schedules method (docs/schedules.md).
    Schedules(Project, crate::schedules::Call),
    /// A queues method (docs/queues.md).
    Queues(Project, crate::queues::Call),
}

/// A request resolved once by the outermost layer (`layers::resolve`) and kept in its
/// extensions: the layers label it with it and the REST dispatcher serves its route.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The REST method id (a discovery id, a fixed route's name, or `unknown`).
    pub method_id: Cow<'static, str>,
    /// A gRPC call's `service/Method` when the server serves it, else `unknown`.
    pub grpc_method: &'static str,
    /// The REST route and the version prefix it came under; `None` for what no route
    /// serves (the dispatcher resolves it again for its error).
    pub route: Option<(Version, Route)>,
}

/// What a call needs, from [`Route::meta`].
#[derive(Debug)]
pub struct Meta<'a> {
    /// The discovery id without `earthengine.projects.` (`operations.get`): the metrics
    /// label, the span name, and what `[[api_fault]] method` matches.
    pub method_id: Cow<'static, str>,
    /// The project the call names; `None` for a lease and the registry's list.
    pub project: Option<Project>,
    /// The operation the call names, if it names one.
    pub operation: Option<&'a Name>,
    /// The permission the caller needs on `project` (on every project, `*`, when it names
    /// none); `None`: a scope of this API is enough (a lease is then limited by
    /// `Auth::lease_scope`).
    pub permission: Option<Permission>,
    /// What the registration gate holds the call to; `None`: never refused by it.
    pub gate: Option<Gate>,
    /// The query parameters the call takes besides the system ones: (camelCase,
    /// snake_case).
    pub parameters: &'static [(&'static str, &'static str)],
}

const LIST_PARAMETERS: &[(&str, &str)] = &[
    ("filter", "filter"),
    ("pageSize", "page_size"),
    ("pageToken", "page_token"),
    ("returnPartialSuccess", "return_partial_success"),
];

const WATCH_PARAMETERS: &[(&str, &str)] = &[("filter", "filter"), ("snapshot", "snapshot")];

impl Route {
    /// What the call needs (see [`Meta`]); docs/auth.md lists the permissions and
    /// docs/projects.md the gate.
    pub fn meta(&self) -> Meta<'_> {
        use Permission as P;
        let other = Some(Gate::Other);
        match self {
            Route::Get(n) => on_operation("operations.get", n, P::OperationsGet, other),
            Route::Wait(n) => on_operation("operations.wait", n, P::OperationsGet, other),
            Route::Output(n) => on_operation("operationOutputs.get", n, P::OperationsGet, other),
            Route::Payload(n) => on_operation("operationPayloads.get", n, P::OperationsGet, other),
            Route::Delete(n) => on_operation("operations.delete", n, P::OperationsDelete, other),
            // Cancel stops work: never gated. So do the worker calls, which finish or give
            // back work already started.
            Route::Cancel(n) => on_operation("operations.cancel", n, P::OperationsUpdate, None),
            Route::Heartbeat(n) => on_operation("operations.heartbeat", n, P::WorkersExecute, None),
            Route::Complete(n) => on_operation("operations.complete", n, P::WorkersExecute, None),
            Route::Release(n) => on_operation("operations.release", n, P::WorkersExecute, None),
            Route::List(p) => Meta {
                parameters: LIST_PARAMETERS,
                ..on_project("operations.list", p, P::OperationsList, other)
            },
            Route::Watch(p) => Meta {
                parameters: WATCH_PARAMETERS,
                ..on_project("operations.watch", p, P::OperationsList, other)
            },
            Route::BatchCancel(p) => {
                on_project("operations.batchCancel", p, P::OperationsUpdate, None)
            }
            Route::Submit(p) => on_project(
                "operations.submit",
                p,
                P::OperationsCreate,
                Some(Gate::Start),
            ),
            Route::BatchSubmit(p) => on_project(
                "operations.batchSubmit",
                p,
                P::OperationsCreate,
                Some(Gate::Start),
            ),
            // A retry starts work, as a submit does.
            Route::Retry(n) => on_operation(
                "operations.retry",
                n,
                P::OperationsCreate,
                Some(Gate::Start),
            ),
            Route::BatchRetry(p) => on_project(
                "operations.batchRetry",
                p,
                P::OperationsCreate,
                Some(Gate::Start),
            ),
            Route::ListAccounts(p) => {
                on_project("serviceAccounts.list", p, P::ServiceAccountsManage, other)
            }
            Route::CreateAccount(p) => {
                on_project("serviceAccounts.create", p, P::ServiceAccountsManage, other)
            }
            Route::SetAccountDisabled(p, _, disabled) => on_project(
                if *disabled {
                    "serviceAccounts.disable"
                } else {
                    "serviceAccounts.enable"
                },
                p,
                P::ServiceAccountsManage,
                other,
            ),
            Route::DeleteAccount(p, _) => {
                on_project("serviceAccounts.delete", p, P::ServiceAccountsManage, other)
            }
            Route::Emulator(p, call) => Meta {
                method_id: Cow::Owned(call.method_id()),
                project: Some(p.clone()),
                operation: None,
                permission: call.permission(),
                gate: Some(call.gate()),
                parameters: call.parameters(),
            },
            Route::Projects(p, call) => Meta {
                method_id: Cow::Owned(call.method_id()),
                project: Some(p.clone()),
                operation: None,
                permission: Some(call.permission()),
                gate: call.gate(),
                parameters: call.parameters(),
            },
            Route::Schedules(p, call) => Meta {
                parameters: call.parameters(),
                ..on_project(call.method_id(), p, call.permission(), Some(call.gate()))
            },
            Route::Queues(p, call) => {
                on_project(call.method_id(), p, call.permission(), Some(call.gate()))
            }
            // Leases span projects: see `Auth::lease_scope`.
            Route::Lease(_) => Meta {
                method_id: Cow::Borrowed("workers.lease"),
                project: None,
                operation: None,
                permission: None,
                gate: None,
                parameters: &[],
            },
            Route::ListRegistrations => Meta {
                method_id: Cow::Borrowed("projectRegistrations.list"),
                project: None,
                operation: None,
                permission: Some(P::ProjectsManage),
                gate: None,
                parameters: &[],
            },
        }
    }
}

/// A call on one operation.
fn on_operation<'a>(
    id: &'static str,
    name: &'a Name,
    permission: Permission,
    gate: Option<Gate>,
) -> Meta<'a> {
    Meta {
        method_id: Cow::Borrowed(id),
        project: Some(name.project()),
        operation: Some(name),
        permission: Some(permission),
        gate,
        parameters: &[],
    }
}

/// A call on a project's collection.
fn on_project(
    id: &'static str,
    project: &Project,
    permission: Permission,
    gate: Option<Gate>,
) -> Meta<'static> {
    Meta {
        method_id: Cow::Borrowed(id),
        project: Some(project.clone()),
        operation: None,
        permission: Some(permission),
        gate,
        parameters: &[],
    }
}

impl App {
    /// Checks that `caller` may make the call `meta` describes: its permission on its
    /// project (or its scope alone), then the registration gate.
    pub async fn authorize(&self, caller: &Caller, meta: &Meta<'_>) -> Result<(), ApiError> {
        self.check(caller, meta)?;
        if let (Some(gate), Some(project)) = (meta.gate, &meta.project) {
            crate::projects::gate(&self.projects, &*self.store, gate, project).await?;
        }
        Ok(())
    }

    /// The permission check alone, for calls on a stream already past the gate.
    pub fn check(&self, caller: &Caller, meta: &Meta<'_>) -> Result<(), ApiError> {
        match meta.permission {
            Some(permission) => {
                let project = meta.project.as_ref().map_or("*", |p| p.as_str());
                self.auth.check(caller, permission, project)
            }
            None => self.auth.check_scope(caller),
        }
    }
}
