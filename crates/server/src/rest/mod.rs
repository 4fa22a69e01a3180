//! The REST adapter: raw-path routing of the operations API (contract section 3) onto the
//! engine. Paths are matched on the raw, still percent-encoded path so that `**` ids keep
//! their `%2F`; the `:verb` is split off the last segment only for POST.

mod accounts;
pub(crate) mod batch;
pub(crate) mod body;
pub(crate) mod discovery;
pub(crate) mod render;
pub(crate) mod workers;

use crate::auth::iam::Permission;
use crate::auth::{Auth, Caller};
use crate::error::ApiError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use longrun_engine::{Engine, Submission};
use longrun_types::{Name, Project, duration};
use longrun_worker::command::output_path;
use render::Version;
use serde::Deserialize;

/// A successful JSON response.
pub fn json_body(value: &impl serde::Serialize) -> Response {
    json_bytes(serde_json::to_vec(value).expect("wire types always serialize"))
}

/// A successful response of JSON already encoded.
pub fn json_bytes(bytes: impl Into<Body>) -> Response {
    let mut response = (StatusCode::OK, bytes.into()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    response
}

fn empty() -> Response {
    json_body(&serde_json::json!({}))
}

/// What the REST handlers share.
#[derive(Clone)]
pub struct App {
    pub engine: Engine,
    pub auth: Auth,
    /// Where the command executor keeps output.
    pub outputs_dir: std::path::PathBuf,
    pub store: std::sync::Arc<dyn longrun_store::Store>,
    /// The Earth Engine emulator's parts (algorithm list, faults).
    pub emulator: std::sync::Arc<crate::emulator::Emulator>,
    /// The watch stream's hub, metrics (contract section 13).
    pub console: crate::console::Console,
    /// `[projects]` (contract section 12).
    pub projects: std::sync::Arc<crate::projects::Settings>,
    /// The message types a worker's response or an error detail may be.
    pub types: longrun_proto::any::Types,
}

/// What a request path and method resolve to.
#[derive(Debug, PartialEq)]
pub(crate) enum Route {
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
    Lease(String),
    Heartbeat(Name),
    Complete(Name),
    /// `POST …:release`: a worker hands a leased operation back.
    Release(Name),
    Output(Name),
    /// An Earth Engine emulator method (algorithms, task starting, assets, not emulated).
    Emulator(Project, crate::emulator::Call),
    /// A projects method (the project config).
    Projects(Project, crate::projects::Call),
    ListAccounts(Project),
    CreateAccount(Project),
    /// Disable (true) or enable (false) an account.
    SetAccountDisabled(Project, String, bool),
    DeleteAccount(Project, String),
    /// `GET /{v}/projectRegistrations`: the project registry (projectAdmin on `*`).
    ListRegistrations,
}

/// A name or project id refused: `TOO_LONG` past its limit, else `INVALID_NAME`.
pub(crate) fn invalid_name(e: longrun_types::NameError) -> ApiError {
    match e {
        longrun_types::NameError::TooLong(too_long) => too_long.into(),
        longrun_types::NameError::Invalid(why) => ApiError::invalid("INVALID_NAME", why),
    }
}

pub(crate) fn project_of(segment: &str) -> Result<Project, ApiError> {
    Project::parse(segment).map_err(invalid_name)
}

fn route(method: &Method, path: &str) -> Result<(Version, Route), ApiError> {
    let not_found = || ApiError::not_found_path(path);
    let rest = path.strip_prefix('/').ok_or_else(not_found)?;
    let (version, rest) = rest.split_once('/').ok_or_else(not_found)?;
    let version = Version::from_prefix(version).ok_or_else(not_found)?;
    if let Some(name) = rest.strip_prefix("operationOutputs/") {
        if method != Method::GET {
            return Err(ApiError::method_not_allowed(method, "GET"));
        }
        return Ok((
            version,
            Route::Output(Name::parse(name).map_err(invalid_name)?),
        ));
    }
    if let Some(worker) = rest.strip_prefix("workers/") {
        return match (method, worker.rsplit_once(':')) {
            (&Method::POST, Some((worker, "lease"))) if !worker.contains('/') => {
                let worker = longrun_types::name::canonical_segment(worker).map_err(|e| {
                    ApiError::invalid("INVALID_NAME", format!("invalid worker id: {e}"))
                })?;
                Ok((version, Route::Lease(worker)))
            }
            (&Method::POST, _) => Err(not_found()),
            _ if worker.ends_with(":lease") => Err(ApiError::method_not_allowed(method, "POST")),
            _ => Err(not_found()),
        };
    }
    if rest == "projectRegistrations" {
        return match *method {
            Method::GET => Ok((version, Route::ListRegistrations)),
            _ => Err(ApiError::method_not_allowed(method, "GET")),
        };
    }
    let rest = rest.strip_prefix("projects/").ok_or_else(not_found)?;
    // `projects/P:verb` (the project's own methods) or `projects/P/...`.
    let (project, rest) = match rest.split_once('/') {
        Some(split) => split,
        None => match rest.split_once(':') {
            Some((project, _)) => (project, &rest[project.len()..]),
            None => return Err(not_found()),
        },
    };
    // The operations collection is no emulator's or project method's: the hot paths skip
    // their tables (matched by string search, twice a request with the metrics label).
    let operations = rest
        .strip_prefix("operations")
        .is_some_and(|after| after.is_empty() || after.starts_with(['/', ':']));
    if !operations {
        if let Some(call) = crate::projects::route(method, rest) {
            return Ok((version, Route::Projects(project_of(project)?, call?)));
        }
        if let Some(call) = crate::emulator::route(method, rest) {
            return Ok((version, Route::Emulator(project_of(project)?, call?)));
        }
    }
    if rest.starts_with(':') {
        return Err(not_found());
    }
    // Only POST carries a custom verb: split at the last `:` after the last `/`.
    let (rest, verb) = match (method, rest.rsplit_once(':')) {
        (&Method::POST, Some((base, verb))) if !verb.contains('/') => (base, Some(verb)),
        _ => (rest, None),
    };
    let project = || project_of(project);
    if rest == "serviceAccounts" {
        return match (method, verb) {
            (&Method::GET, None) => Ok((version, Route::ListAccounts(project()?))),
            (&Method::POST, None) => Ok((version, Route::CreateAccount(project()?))),
            _ => Err(ApiError::method_not_allowed(method, "GET, POST")),
        };
    }
    if let Some(email) = rest.strip_prefix("serviceAccounts/") {
        let project = project()?;
        let email = || accounts::email_in(&project, email);
        return match (method, verb) {
            (&Method::DELETE, None) => {
                Ok((version, Route::DeleteAccount(project.clone(), email()?)))
            }
            (&Method::POST, Some("disable")) => Ok((
                version,
                Route::SetAccountDisabled(project.clone(), email()?, true),
            )),
            (&Method::POST, Some("enable")) => Ok((
                version,
                Route::SetAccountDisabled(project.clone(), email()?, false),
            )),
            (&Method::POST, _) => Err(not_found()),
            _ => Err(ApiError::method_not_allowed(method, "DELETE")),
        };
    }
    if rest == "operations" {
        return match (method, verb) {
            (&Method::GET, None) => Ok((version, Route::List(project()?))),
            (&Method::POST, Some("submit")) => Ok((version, Route::Submit(project()?))),
            (&Method::POST, Some("batchCancel")) => Ok((version, Route::BatchCancel(project()?))),
            (&Method::POST, Some(_)) => Err(not_found()),
            _ => Err(ApiError::method_not_allowed(method, "GET")),
        };
    }
    if rest == "operations:watch" {
        return match method {
            &Method::GET => Ok((version, Route::Watch(project()?))),
            _ => Err(ApiError::method_not_allowed(method, "GET")),
        };
    }
    if rest == "operations:submit" {
        return Err(ApiError::method_not_allowed(method, "POST"));
    }
    let id = rest.strip_prefix("operations/").ok_or_else(not_found)?;
    let name = || Name::new(&project()?, id).map_err(invalid_name);
    match (method, verb) {
        (&Method::GET, None) => Ok((version, Route::Get(name()?))),
        (&Method::DELETE, None) => Ok((version, Route::Delete(name()?))),
        (&Method::POST, Some("cancel")) => Ok((version, Route::Cancel(name()?))),
        (&Method::POST, Some("wait")) => Ok((version, Route::Wait(name()?))),
        (&Method::POST, Some("heartbeat")) => Ok((version, Route::Heartbeat(name()?))),
        (&Method::POST, Some("complete")) => Ok((version, Route::Complete(name()?))),
        (&Method::POST, Some("release")) => Ok((version, Route::Release(name()?))),
        (&Method::POST, Some(_)) => Err(not_found()),
        _ => Err(ApiError::method_not_allowed(method, "GET, DELETE")),
    }
}

/// The route of a request, if one serves it (for metrics labels).
pub(crate) fn route_of(method: &Method, path: &str) -> Option<Route> {
    route(method, path).ok().map(|(_, route)| route)
}

/// The fallback handler: every path under `/v1`, `/v1beta`, `/v1alpha`.
pub async fn handle(State(app): State<App>, request: Request) -> Response {
    // A base URL with a trailing slash (`http://host:port/`) makes the client ask for
    // `//$discovery/rest`.
    if request.uri().path() == "//$discovery/rest" && request.method() == Method::GET {
        return discovery(request).await;
    }
    match dispatch(&app, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WaitBody {
    timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SubmitBody {
    #[serde(rename = "type")]
    op_type: Option<String>,
    description: Option<String>,
    priority: Option<i64>,
    #[serde(alias = "request_id")]
    request_id: Option<String>,
    #[serde(alias = "operation_id")]
    operation_id: Option<String>,
    payload: Option<serde_json::Value>,
    #[serde(alias = "script_uri")]
    script_uri: Option<String>,
    #[serde(alias = "destination_uris")]
    destination_uris: Option<Vec<String>>,
    #[serde(alias = "max_attempts")]
    max_attempts: Option<i64>,
    timeout: Option<String>,
    #[serde(alias = "concurrency_key")]
    concurrency_key: Option<String>,
}

pub(crate) fn parse_duration(field: &str, text: &str) -> Result<std::time::Duration, ApiError> {
    duration::parse(text).map_err(|e| {
        ApiError::invalid("INVALID_DURATION", format!("{field}: {e}")).with("field", field)
    })
}

const LIST_PARAMETERS: &[(&str, &str)] = &[
    ("filter", "filter"),
    ("pageSize", "page_size"),
    ("pageToken", "page_token"),
    ("returnPartialSuccess", "return_partial_success"),
];

const WATCH_PARAMETERS: &[(&str, &str)] = &[("filter", "filter"), ("snapshot", "snapshot")];

/// Deletes a done operation, and what the command executor kept of its output; the
/// audit log names who.
pub(crate) async fn delete(app: &App, caller: &Caller, name: &Name) -> Result<(), ApiError> {
    app.engine.delete(name).await?;
    tracing::info!(operation = %name.as_str(), by = %caller.member(), "deleted");
    crate::outputs::remove(&output_path(&app.outputs_dir, name));
    Ok(())
}

/// `returnPartialSuccess=true` (contract section 8).
pub(crate) fn partial_success_unsupported() -> ApiError {
    ApiError::new(
        longrun_types::Code::Unimplemented,
        "NOT_SUPPORTED",
        "returnPartialSuccess is not supported: every project is reachable",
    )
}

/// The discovery id of a route's method without `earthengine.projects.` (what
/// `[[api_fault]] method` matches), and the project it names (empty: none).
pub(crate) fn method_of(route: &Route) -> (String, String) {
    let (id, project) = match route {
        Route::Get(n) => ("operations.get", n.project().as_str().to_string()),
        Route::Delete(n) => ("operations.delete", n.project().as_str().to_string()),
        Route::Cancel(n) => ("operations.cancel", n.project().as_str().to_string()),
        Route::Wait(n) => ("operations.wait", n.project().as_str().to_string()),
        Route::Heartbeat(n) => ("operations.heartbeat", n.project().as_str().to_string()),
        Route::Complete(n) => ("operations.complete", n.project().as_str().to_string()),
        Route::Release(n) => ("operations.release", n.project().as_str().to_string()),
        Route::Output(n) => ("operationOutputs.get", n.project().as_str().to_string()),
        Route::List(p) => ("operations.list", p.as_str().to_string()),
        Route::Watch(p) => ("operations.watch", p.as_str().to_string()),
        Route::BatchCancel(p) => ("operations.batchCancel", p.as_str().to_string()),
        Route::Submit(p) => ("operations.submit", p.as_str().to_string()),
        Route::Lease(_) => ("workers.lease", String::new()),
        Route::ListRegistrations => ("projectRegistrations.list", String::new()),
        Route::ListAccounts(p) => ("serviceAccounts.list", p.as_str().to_string()),
        Route::CreateAccount(p) => ("serviceAccounts.create", p.as_str().to_string()),
        Route::SetAccountDisabled(p, _, true) => {
            ("serviceAccounts.disable", p.as_str().to_string())
        }
        Route::SetAccountDisabled(p, _, false) => {
            ("serviceAccounts.enable", p.as_str().to_string())
        }
        Route::DeleteAccount(p, _) => ("serviceAccounts.delete", p.as_str().to_string()),
        Route::Emulator(p, call) => return (call.method_id(), p.as_str().to_string()),
        Route::Projects(p, call) => return (call.method_id(), p.as_str().to_string()),
    };
    (id.to_string(), project)
}

/// The permission a route needs, and on which project.
pub(crate) fn permission(route: &Route) -> Option<(Permission, Project)> {
    Some(match route {
        Route::Get(name) | Route::Wait(name) | Route::Output(name) => {
            (Permission::OperationsGet, name.project())
        }
        Route::List(project) | Route::Watch(project) => {
            (Permission::OperationsList, project.clone())
        }
        Route::Cancel(name) => (Permission::OperationsUpdate, name.project()),
        Route::BatchCancel(project) => (Permission::OperationsUpdate, project.clone()),
        Route::Delete(name) => (Permission::OperationsDelete, name.project()),
        Route::Submit(project) => (Permission::OperationsCreate, project.clone()),
        // Any authenticated caller may read what the server offers.
        Route::Emulator(project, call) => (call.permission()?, project.clone()),
        Route::Projects(project, call) => (call.permission(), project.clone()),
        Route::Heartbeat(name) | Route::Complete(name) | Route::Release(name) => {
            (Permission::WorkersExecute, name.project())
        }
        Route::ListAccounts(project)
        | Route::CreateAccount(project)
        | Route::SetAccountDisabled(project, ..)
        | Route::DeleteAccount(project, _) => (Permission::ServiceAccountsManage, project.clone()),
        // Leases span projects: see `Auth::lease_scope`.
        Route::Lease(_) => return None,
        // Checked on every project (`*`) by the handler.
        Route::ListRegistrations => return None,
    })
}

/// `GET /$discovery/rest?version=v1|v1beta|v1alpha`: the discovery document, public like
/// Google's (it describes the API and holds no data).
pub async fn discovery(request: Request) -> Response {
    let version = request
        .uri()
        .query()
        .and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "version")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_else(|| "v1".into());
    let Some(version) = Version::from_prefix(&version) else {
        return ApiError::new(
            longrun_types::Code::NotFound,
            "API_VERSION_NOT_FOUND",
            format!(
                "no discovery document for version `{version}`; versions are v1, v1beta, v1alpha"
            ),
        )
        .into_response();
    };
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    json_body(&discovery::document(version, &format!("http://{host}/")))
}

/// `POST /token`: the token endpoint (JWT-bearer grant), answering in OAuth's form.
pub async fn token(State(app): State<App>, body: axum::body::Bytes) -> Response {
    let granted = if app.auth.enabled() {
        app.auth.tokens().grant(&body).await
    } else {
        app.auth.tokens().grant_unchecked(&body)
    };
    let (status, answer) = match granted {
        Ok(answer) => (StatusCode::OK, answer),
        Err(e) => (
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
            e.body(),
        ),
    };
    let mut response = json_body(&answer);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn dispatch(app: &App, request: Request) -> Result<Response, ApiError> {
    let engine = &app.engine;
    let (parts, body) = request.into_parts();
    let (version, route) = route(&parts.method, parts.uri.path())?;
    if app.emulator.faults.has_request_faults() {
        let (method_id, project) = method_of(&route);
        app.emulator.faults.request(&method_id, &project).await?;
    }
    let caller = app
        .auth
        .authenticate(&parts.headers, parts.uri.query())
        .await?;
    match permission(&route) {
        Some((permission, project)) => app.auth.check(&caller, permission, project.as_str())?,
        None => app.auth.check_scope(&caller)?,
    }
    crate::projects::gate(app, &route).await?;
    let query = parts.uri.query();
    // Methods not emulated answer at once, whatever their parameters and body.
    if let Route::Emulator(_, crate::emulator::Call::NotEmulated(id)) = &route {
        return Err(crate::emulator::methods::not_emulated(id));
    }
    let known: &[(&str, &str)] = match &route {
        Route::List(_) => LIST_PARAMETERS,
        Route::Watch(_) => WATCH_PARAMETERS,
        Route::Emulator(_, call) => call.parameters(),
        Route::Projects(_, call) => call.parameters(),
        _ => &[],
    };
    let query = body::Query::parse(query, known)?;
    let bytes = body::read(Body::new(body)).await?;
    match route {
        Route::Get(name) => {
            let op = engine.get(&name).await?;
            let mut response = json_body(&render::operation(&op, version));
            // Why a PENDING operation waits, when this server can tell.
            if let Some(why) = engine.why_waiting(&op).await
                && let Ok(value) = HeaderValue::from_str(&why)
            {
                let headers = response.headers_mut();
                headers.insert(crate::console::demand::HEADER, value);
            }
            Ok(response)
        }
        Route::Delete(name) => {
            delete(app, &caller, &name).await?;
            Ok(empty())
        }
        Route::Output(name) => {
            engine.get(&name).await?;
            let path = output_path(&app.outputs_dir, &name);
            let bytes =
                tokio::task::spawn_blocking(move || std::fs::read(path).unwrap_or_default())
                    .await
                    .unwrap_or_default();
            Ok(json_body(&serde_json::json!({
                "name": name.as_str(),
                "output": String::from_utf8_lossy(&bytes),
            })))
        }
        Route::Cancel(name) => {
            let CancelBody {} = body::json(&bytes)?;
            engine.cancel(&name, &caller.member()).await?;
            Ok(empty())
        }
        Route::Wait(name) => {
            let WaitBody { timeout } = body::json(&bytes)?;
            let timeout = timeout.map(|t| parse_duration("timeout", &t)).transpose()?;
            let op = engine.wait(&name, timeout).await?;
            Ok(json_body(&render::operation(&op, version)))
        }
        Route::List(project) => {
            let page_size = match query.get("pageSize") {
                None | Some("") => 0,
                Some(text) => text.parse::<i64>().map_err(|_| {
                    ApiError::invalid(
                        "INVALID_PAGE_SIZE",
                        format!("pageSize `{text}` is not an integer"),
                    )
                })?,
            };
            match query.get("returnPartialSuccess") {
                None | Some("false") | Some("") => {}
                Some("true") => return Err(partial_success_unsupported()),
                Some(other) => {
                    return Err(ApiError::invalid(
                        "INVALID_ARGUMENT",
                        format!("returnPartialSuccess takes true or false, not `{other}`"),
                    ));
                }
            }
            let page = engine
                .list(
                    &project,
                    query.get("filter").unwrap_or(""),
                    page_size,
                    query.get("pageToken").unwrap_or(""),
                )
                .await?;
            Ok(json_body(&render::ListJson {
                operations: page
                    .operations
                    .iter()
                    .map(|op| render::operation(op, version))
                    .collect(),
                next_page_token: page.next_page_token,
            }))
        }
        Route::Watch(project) => {
            let (auth, caller) = (app.auth.clone(), caller.clone());
            let permission = Some((Permission::OperationsList, project.clone()));
            let revoked = async move { auth.revoked(&caller, permission).await };
            crate::console::watch::start(
                crate::console::watch::Watch {
                    engine: engine.clone(),
                    hub: app.console.hub.clone(),
                    project,
                    filter_text: query.get("filter").unwrap_or("").to_string(),
                    version,
                    resume: crate::console::watch::last_event_id(&parts.headers),
                    snapshot: crate::console::watch::snapshot_parameter(query.get("snapshot"))?,
                },
                revoked,
            )
        }
        Route::BatchCancel(project) => {
            let op =
                crate::console::batch::submit(engine, &project, &caller.member(), &bytes).await?;
            Ok(json_body(&render::operation(&op, version)))
        }
        Route::Lease(worker) => {
            let projects = app.auth.lease_scope(&caller)?;
            workers::lease(engine, version, worker, projects, &bytes).await
        }
        Route::Heartbeat(name) => workers::heartbeat(engine, &name, &bytes).await,
        Route::Complete(name) => {
            workers::complete(engine, &app.types, version, &name, &bytes).await
        }
        Route::Release(name) => workers::release(engine, version, &name, &bytes).await,
        Route::Emulator(project, call) => {
            crate::emulator::handle(app, &caller, version, project, call, &query, &bytes).await
        }
        Route::Projects(project, call) => {
            crate::projects::handle(app, project, call, &query, &bytes).await
        }
        Route::ListRegistrations => crate::projects::list_registrations(app, &caller).await,
        Route::ListAccounts(project) => accounts::list(&*app.store, &project).await,
        Route::CreateAccount(project) => {
            accounts::create(&*app.store, &caller, &project, &bytes).await
        }
        Route::SetAccountDisabled(_, email, disabled) => {
            accounts::set_disabled(&*app.store, &caller, &email, disabled).await
        }
        Route::DeleteAccount(_, email) => accounts::delete(&*app.store, &caller, &email).await,
        Route::Submit(project) => {
            let b: SubmitBody = body::json(&bytes)?;
            let submission = Submission {
                op_type: b.op_type.unwrap_or_default(),
                description: b.description.unwrap_or_default(),
                priority: b.priority,
                request_id: b.request_id,
                operation_id: b.operation_id,
                payload: b.payload,
                script_uri: b.script_uri.unwrap_or_default(),
                destination_uris: b.destination_uris.unwrap_or_default(),
                max_attempts: b.max_attempts,
                timeout: b
                    .timeout
                    .map(|t| parse_duration("timeout", &t))
                    .transpose()?,
                concurrency_key: b.concurrency_key,
            };
            let op = engine.submit(&project, submission).await?;
            Ok(json_body(&render::operation(&op, version)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(method: Method, path: &str) -> Route {
        route(&method, path).unwrap().1
    }

    fn status(method: Method, path: &str) -> u16 {
        route(&method, path).unwrap_err().status()
    }

    #[test]
    fn routes_follow_the_contract() {
        let name = |s: &str| Name::parse(s).unwrap();
        let project = Project::parse("p").unwrap();
        assert_eq!(
            ok(Method::GET, "/v1/projects/p/operations"),
            Route::List(project.clone())
        );
        assert_eq!(
            ok(Method::POST, "/v1alpha/projects/p/operations:submit"),
            Route::Submit(project)
        );
        assert_eq!(
            ok(Method::GET, "/v1beta/projects/p/operations/a/b/c"),
            Route::Get(name("projects/p/operations/a/b/c"))
        );
        assert_eq!(
            ok(Method::POST, "/v1/projects/p/operations/a%2Fb:cancel"),
            Route::Cancel(name("projects/p/operations/a%2Fb"))
        );
        assert_eq!(
            ok(Method::POST, "/v1/projects/p/operations/x/y:wait"),
            Route::Wait(name("projects/p/operations/x/y"))
        );
        // GET keeps the colon in the id.
        assert_eq!(
            ok(Method::GET, "/v1/projects/p/operations/x:cancel"),
            Route::Get(name("projects/p/operations/x%3Acancel"))
        );
        assert_eq!(
            ok(Method::DELETE, "/v1/projects/p/operations/x"),
            Route::Delete(name("projects/p/operations/x"))
        );
        assert_eq!(
            ok(
                Method::GET,
                "/v1/operationOutputs/projects/p/operations/x/y"
            ),
            Route::Output(name("projects/p/operations/x/y"))
        );
        assert_eq!(
            ok(Method::POST, "/v1/workers/w1:lease"),
            Route::Lease("w1".into())
        );
    }

    #[test]
    fn discovery_describes_only_what_is_routed() {
        for method in discovery::all() {
            for version in ["v1", "v1beta", "v1alpha"] {
                let http = Method::from_bytes(method.http.as_bytes()).unwrap();
                let path = format!("/{version}/{}", method.example);
                assert!(
                    route(&http, &path).is_ok(),
                    "{} {path}: {:?}",
                    method.http,
                    route(&http, &path).err()
                );
            }
            // The example is an instance of the path template.
            let param = format!("{{+{}}}", method.param.0);
            let (before, after) = method.path.split_once(&param).unwrap();
            assert!(
                method.example.starts_with(before)
                    && crate::emulator::methods::strip_template_suffix(method.example, after)
                        .is_some(),
                "{} does not fit {}",
                method.example,
                method.path
            );
        }
        let doc = discovery::document(Version::V1alpha, "http://h/");
        let list = &doc["resources"]["projects"]["resources"]["operations"]["methods"]["list"];
        assert_eq!(list["path"], "v1alpha/{+name}/operations");
        assert_eq!(list["flatPath"], "v1alpha/projects/{projectsId}/operations");
        assert_eq!(list["response"]["$ref"], "ListOperationsResponse");
        assert!(
            doc["schemas"]["ListOperationsResponse"]["properties"]["nextPageToken"].is_object()
        );
        let export = &doc["resources"]["projects"]["resources"]["table"]["methods"]["export"];
        assert_eq!(export["id"], "earthengine.projects.table.export");
        assert_eq!(
            export["parameters"]["project"]["pattern"],
            "^projects/[^/]+$"
        );
        // Every schema a method names exists.
        for method in discovery::all() {
            for schema in std::iter::once(method.response).chain(method.request) {
                assert!(doc["schemas"][schema].is_object(), "{schema}");
            }
        }
    }

    #[test]
    fn unknown_paths_verbs_and_methods() {
        assert_eq!(status(Method::GET, "/v2/projects/p/operations"), 404);
        assert_eq!(status(Method::GET, "/v1/projects/p"), 404);
        assert_eq!(status(Method::GET, "/v1/folders/p/operations"), 404);
        assert_eq!(
            status(Method::POST, "/v1/projects/p/operations/x:explode"),
            404
        );
        assert_eq!(
            status(Method::POST, "/v1/projects/p/operations:explode"),
            404
        );
        assert_eq!(status(Method::PUT, "/v1/projects/p/operations/x"), 405);
        assert_eq!(status(Method::POST, "/v1/projects/p/operations/x"), 405);
        assert_eq!(status(Method::DELETE, "/v1/projects/p/operations"), 405);
        assert_eq!(status(Method::GET, "/v1/projects/p/operations:submit"), 405);
        assert_eq!(status(Method::GET, "/v1/projects/p/operations/a//b"), 400);
        assert_eq!(status(Method::GET, "/v1/projects/p/operations/%zz"), 400);
    }
}
