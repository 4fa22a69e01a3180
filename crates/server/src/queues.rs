//! Queues over REST (docs/queues.md): `GET …/projects/{p}/queues`,
//! `GET …/queues/{type}`, `POST …/queues/{type}:pause` and `:resume`, routed here by the
//! REST router; the counts and pauses are the engine's (`longrun_engine::queues`). gRPC's
//! `longrun.v1.Queues` shares the wire form of this module.

use crate::auth::iam::Permission;
use crate::kit::error::ApiError;
use crate::kit::json::json_body;
use crate::kit::method::Method;
use crate::projects::Gate;
use axum::response::Response;
use longrun_engine::Engine;
use longrun_engine::queues::Queue;
use longrun_types::Project;
use serde_json::{Value, json};

/// A queues method, routed; each names the queue's type (`-`: every type).
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    List,
    Get(String),
    Pause(String),
    Resume(String),
}

impl Call {
    /// The discovery id without `earthengine.projects.`.
    pub fn method_id(&self) -> &'static str {
        match self {
            Call::List => "queues.list",
            Call::Get(_) => "queues.get",
            Call::Pause(_) => "queues.pause",
            Call::Resume(_) => "queues.resume",
        }
    }

    /// Get's permission to read; the admin role's `longrun.queues.update` to pause and
    /// resume.
    pub fn permission(&self) -> Permission {
        match self {
            Call::List | Call::Get(_) => Permission::OperationsGet,
            Call::Pause(_) | Call::Resume(_) => Permission::QueuesUpdate,
        }
    }

    /// A pause or resume starts nothing: only the gate's reads hold.
    pub fn gate(&self) -> Gate {
        Gate::Other
    }
}

/// Routes `path` (after `projects/P/`) when it is a queues method; `None` leaves it to the
/// other routers. The type is one path segment, percent-decoded.
pub fn route(http: &http::Method, path: &str) -> Option<Result<Call, ApiError>> {
    if path == "queues" {
        return Some(match *http {
            http::Method::GET => Ok(Call::List),
            _ => Err(ApiError::method_not_allowed(http, "GET")),
        });
    }
    let rest = path.strip_prefix("queues/")?;
    let (segment, verb) = match rest.rsplit_once(':') {
        Some((segment, verb)) => (segment, Some(verb)),
        None => (rest, None),
    };
    if segment.is_empty() || segment.contains('/') {
        return Some(Err(ApiError::not_found_path(path)));
    }
    let op_type = match percent_encoding::percent_decode_str(segment).decode_utf8() {
        Ok(decoded) => decoded.into_owned(),
        Err(_) => {
            return Some(Err(ApiError::invalid(
                "INVALID_QUEUE",
                format!("the queue's type `{segment}` is not UTF-8"),
            )));
        }
    };
    Some(match (http, verb) {
        (&http::Method::GET, None) => Ok(Call::Get(op_type)),
        (&http::Method::POST, Some("pause")) => Ok(Call::Pause(op_type)),
        (&http::Method::POST, Some("resume")) => Ok(Call::Resume(op_type)),
        (_, None) => Err(ApiError::method_not_allowed(http, "GET")),
        (_, Some("pause" | "resume")) => Err(ApiError::method_not_allowed(http, "POST")),
        (_, Some(_)) => Err(ApiError::not_found_path(path)),
    })
}

const PROJECT: &str = "^projects/[^/]+$";
const QUEUE: &str = "^projects/[^/]+/queues/[^/]+$";

/// The discovery entries of the queues methods.
pub const METHODS: &[Method] = &[
    Method {
        resource: &["projects", "queues"],
        name: "list",
        http: "GET",
        path: "{+parent}/queues",
        param: ("parent", PROJECT),
        query: &[],
        request: None,
        response: "Any",
        description: "Lists a project's queues with PENDING or RUNNING work or a pause.",
        example: "projects/p/queues",
    },
    Method {
        resource: &["projects", "queues"],
        name: "get",
        http: "GET",
        path: "{+name}",
        param: ("name", QUEUE),
        query: &[],
        request: None,
        response: "Any",
        description: "Gets a queue (a project's operations of one type; `-`: every type): \
                      its state, exact counts and oldest PENDING time.",
        example: "projects/p/queues/EXPORT_IMAGE",
    },
    Method {
        resource: &["projects", "queues"],
        name: "pause",
        http: "POST",
        path: "{+name}:pause",
        param: ("name", QUEUE),
        query: &[],
        request: None,
        response: "Any",
        description: "Pauses a queue on every server: nothing is leased from it until it \
                      resumes.",
        example: "projects/p/queues/EXPORT_IMAGE:pause",
    },
    Method {
        resource: &["projects", "queues"],
        name: "resume",
        http: "POST",
        path: "{+name}:resume",
        param: ("name", QUEUE),
        query: &[],
        request: None,
        response: "Any",
        description: "Resumes a paused queue (`-`: every queue of the project).",
        example: "projects/p/queues/EXPORT_IMAGE:resume",
    },
];

/// A queue in its wire form: counts as int64 strings (proto3 JSON), `oldestPendingTime`
/// only when a PENDING operation can be leased.
pub fn render(q: &Queue) -> Value {
    let mut out = json!({
        "name": q.name(),
        "state": if q.paused { "PAUSED" } else { "RUNNING" },
        "pendingCount": q.counts.pending.to_string(),
        "runningCount": q.counts.running.to_string(),
    });
    if let Some(t) = q.counts.oldest_pending {
        out["oldestPendingTime"] = json!(t.to_string());
    }
    out
}

/// Serves a queues call whose permission has been checked.
pub async fn handle(engine: &Engine, project: Project, call: Call) -> Result<Response, ApiError> {
    let queue = match call {
        Call::List => {
            let queues = engine.queues(&project).await?;
            let mut out = json!({});
            if !queues.is_empty() {
                out["queues"] = queues.iter().map(render).collect();
            }
            return Ok(json_body(&out));
        }
        Call::Get(op_type) => engine.queue(&project, &op_type).await?,
        Call::Pause(op_type) => engine.pause_queue(&project, &op_type, true).await?,
        Call::Resume(op_type) => engine.pause_queue(&project, &op_type, false).await?,
    };
    Ok(json_body(&render(&queue)))
}
