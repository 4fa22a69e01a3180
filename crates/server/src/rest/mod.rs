//! The REST adapter: raw-path routing of the API (docs/operations.md) onto the call table
//! (`calls::Route`), and the dispatch of each route to its feature. Paths are matched on
//! the raw, still percent-encoded path so that `**` ids keep their `%2F`; the `:verb` is
//! split off the last segment only for POST.

pub(crate) mod batch;
pub(crate) mod discovery;
mod openapi;
pub(crate) mod workers;

use crate::accounts;
use crate::auth::iam::Permission;
use crate::calls::{App, Resolved, Route};
use crate::kit::body::{self, parse_duration};
use crate::kit::error::ApiError;
use crate::kit::json::{empty, json_body};
use crate::kit::names::{invalid_name, operation_name, project_of};
use crate::kit::render::{self, Version};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};
use longrun_engine::Submission;
use longrun_types::Name;
use serde::Deserialize;

/// The route of a REST request and the version prefix it came under; the error it is
/// answered with when no route serves it (404, or 405 with `Allow`).
pub(crate) fn route(method: &Method, path: &str) -> Result<(Version, Route), ApiError> {
    let not_found = || ApiError::not_found_path(path);
    let rest = path.strip_prefix('/').ok_or_else(not_found)?;
    let (version, rest) = rest.split_once('/').ok_or_else(not_found)?;
    let version = Version::from_prefix(version).ok_or_else(not_found)?;
    for (prefix, read) in [
        ("operationOutputs/", Route::Output as fn(Name) -> Route),
        ("operationPayloads/", Route::Payload),
    ] {
        if let Some(name) = rest.strip_prefix(prefix) {
            if method != Method::GET {
                return Err(ApiError::method_not_allowed(method, "GET"));
            }
            return Ok((version, read(Name::parse(name).map_err(invalid_name)?)));
        }
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
        if let Some(call) = crate::schedules::route(method, rest) {
            return Ok((version, Route::Schedules(project_of(project)?, call?)));
        }
        if let Some(call) = crate::queues::route(method, rest) {
            return Ok((version, Route::Queues(project_of(project)?, call?)));
        }
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
            (&Method::POST, Some("batchSubmit")) => Ok((version, Route::BatchSubmit(project()?))),
            (&Method::POST, Some("batchCancel")) => Ok((version, Route::BatchCancel(project()?))),
            (&Method::POST, Some("batchRetry")) => Ok((version, Route::BatchRetry(project()?))),
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
        (&Method::POST, Some("retry")) => Ok((version, Route::Retry(name()?))),
        (&Method::POST, Some(_)) => Err(not_found()),
        _ => Err(ApiError::method_not_allowed(method, "GET, DELETE")),
    }
}

/// The header of a get of a PENDING operation that says why it waits
/// (`Engine::why_waiting`; docs/watch.md#why-work-waits).
pub const WAITING_HEADER: &str = "x-longrun-waiting";

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
struct RetryBody {
    #[serde(alias = "operation_id")]
    operation_id: Option<String>,
    #[serde(alias = "request_id")]
    request_id: Option<String>,
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
    #[serde(alias = "schedule_time")]
    schedule_time: Option<String>,
    #[serde(alias = "start_timeout")]
    start_timeout: Option<String>,
    parent: Option<String>,
}

/// `GET /openapi.json`: the OpenAPI 3.1 document of the REST methods, public as discovery
/// is.
pub async fn openapi() -> Response {
    json_body(&openapi::document())
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
    let (mut parts, body) = request.into_parts();
    // Resolved once by the outermost layer; a request that missed it (a part of `/batch`)
    // and one no route serves (for its error) are resolved here.
    let resolved = parts.extensions.remove::<Resolved>().and_then(|r| r.route);
    let (version, route) = match resolved {
        Some(resolved) => resolved,
        None => route(&parts.method, parts.uri.path())?,
    };
    let meta = route.meta();
    if app.emulator.faults.has_request_faults() {
        let project = meta.project.as_ref().map_or("", |p| p.as_str());
        app.emulator
            .faults
            .request(&meta.method_id, project)
            .await?;
    }
    let caller = app
        .auth
        .authenticate(
            &parts.headers,
            parts.uri.query(),
            parts.extensions.get::<crate::tls::PeerCertificate>(),
        )
        .await?;
    app.authorize(&caller, &meta).await?;
    // Methods not emulated answer at once, whatever their parameters and body.
    if let Route::Emulator(_, crate::emulator::Call::NotEmulated(id)) = &route {
        return Err(crate::emulator::methods::not_emulated(id));
    }
    let query = body::Query::parse(parts.uri.query(), meta.parameters)?;
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
                headers.insert(WAITING_HEADER, value);
            }
            Ok(response)
        }
        Route::Delete(name) => {
            crate::outputs::delete(engine, &app.outputs_dir, &caller.member(), &name).await?;
            Ok(empty())
        }
        Route::Output(name) => {
            let output = crate::outputs::read(engine, &app.outputs_dir, &name).await?;
            Ok(json_body(&serde_json::json!({
                "name": name.as_str(),
                "output": output,
            })))
        }
        Route::Payload(name) => {
            let payload = engine.payload(&name).await?;
            Ok(json_body(&serde_json::json!({
                "name": name.as_str(),
                "payload": payload,
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
                Some("true") => return Err(ApiError::partial_success_unsupported()),
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
            crate::changes::watch::start(
                crate::changes::watch::Watch {
                    engine: engine.clone(),
                    hub: app.hub.clone(),
                    project,
                    filter_text: query.get("filter").unwrap_or("").to_string(),
                    version,
                    resume: crate::changes::watch::last_event_id(&parts.headers),
                    snapshot: crate::changes::watch::snapshot_parameter(query.get("snapshot"))?,
                },
                revoked,
            )
        }
        Route::BatchCancel(project) => {
            let op =
                crate::bulk::cancel::submit(engine, &project, &caller.member(), &bytes).await?;
            Ok(json_body(&render::operation(&op, version)))
        }
        Route::BatchRetry(project) => {
            let op = crate::bulk::retry::submit_json(engine, &project, &bytes).await?;
            Ok(json_body(&render::operation(&op, version)))
        }
        Route::Retry(name) => {
            let b: RetryBody = body::json(&bytes)?;
            let retry = longrun_engine::Retry {
                operation_id: b.operation_id,
                request_id: b.request_id,
            };
            let op = engine.retry(&name, retry).await?;
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
            (app.emulator)
                .handle(&caller, version, project, call, &query, &bytes)
                .await
        }
        Route::Projects(project, call) => {
            crate::projects::handle(&app.projects, &*app.store, project, call, &query, &bytes).await
        }
        Route::ListRegistrations => crate::projects::list_registrations(&*app.store).await,
        Route::Schedules(project, call) => {
            crate::schedules::handle(&app.schedules, project, call, &query, &bytes).await
        }
        Route::Queues(project, call) => crate::queues::handle(engine, project, call).await,
        Route::ListAccounts(project) => accounts::list(&*app.store, &project).await,
        Route::CreateAccount(project) => {
            accounts::create(&*app.store, &caller, &project, &bytes).await
        }
        Route::SetAccountDisabled(_, email, disabled) => {
            accounts::set_disabled(&*app.store, &caller, &email, disabled).await
        }
        Route::DeleteAccount(_, email) => accounts::delete(&*app.store, &caller, &email).await,
        Route::Submit(project) => {
            let op = engine.submit(&project, submission(&bytes)?).await?;
            Ok(json_body(&render::operation(&op, version)))
        }
        Route::BatchSubmit(project) => {
            let ops = engine.submit_batch(&project, submissions(&bytes)?).await?;
            #[derive(serde::Serialize)]
            struct Answer<'a> {
                operations: Vec<render::OperationJson<'a>>,
            }
            let operations = ops
                .iter()
                .map(|op| render::operation(op, version))
                .collect();
            Ok(json_body(&Answer { operations }))
        }
    }
}

/// A batch submit body (docs/operations.md#batch-submit), `{"requests": [submit bodies]}`,
/// each read as submit reads its body; one that does not read is 400 naming its index
/// (`requests[i]: …`, ErrorInfo `index`).
fn submissions(bytes: &[u8]) -> Result<Vec<Submission>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        requests: Option<Vec<serde_json::Value>>,
    }
    let Body { requests } = body::json(bytes)?;
    requests
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, request)| {
            let bytes = serde_json::to_vec(&request).expect("a JSON value serializes");
            submission(&bytes).map_err(|e| e.in_batch(i))
        })
        .collect()
}

/// A submit body as submit reads it; a schedule's `operation` is read by it too
/// (docs/schedules.md).
pub(crate) fn submission(bytes: &[u8]) -> Result<Submission, ApiError> {
    let b: SubmitBody = body::json(bytes)?;
    Ok(Submission {
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
        schedule_time: b
            .schedule_time
            .map(|t| body::parse_time("scheduleTime", &t))
            .transpose()?,
        start_timeout: b
            .start_timeout
            .map(|t| parse_duration("startTimeout", &t))
            .transpose()?,
        schedule: None,
        parent: b.parent.map(|p| operation_name("parent", &p)).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use longrun_types::Project;

    fn ok(method: Method, path: &str) -> Route {
        route(&method, path).unwrap().1
    }

    fn status(method: Method, path: &str) -> u16 {
        route(&method, path).unwrap_err().status()
    }

    #[test]
    fn routes_follow_the_api_reference() {
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
            ok(Method::POST, "/v1/projects/p/operations/a/b:retry"),
            Route::Retry(name("projects/p/operations/a/b"))
        );
        assert_eq!(
            ok(Method::POST, "/v1/projects/p/operations:batchRetry"),
            Route::BatchRetry(Project::parse("p").unwrap())
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
            let (before, after) = method.path.split_once(&param).unwrap_or((method.path, ""));
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
