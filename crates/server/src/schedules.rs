//! Schedules over REST (docs/schedules.md): `POST|GET …/projects/{p}/schedules`,
//! `GET|PATCH|DELETE …/schedules/{id}`, routed here by the REST router; the rules and the
//! firing are the engine's (`longrun_engine::schedules`). gRPC's `longrun.v1.Schedules`
//! shares the wire form and body reading of this module.

use crate::auth::iam::Permission;
use crate::kit::body::{self, Query};
use crate::kit::error::ApiError;
use crate::kit::json::{empty, json_body};
use crate::kit::method::Method;
use crate::kit::names::invalid_name;
use crate::projects::Gate;
use axum::response::Response;
use longrun_engine::schedules::{Patch, Scheduler, Spec};
use longrun_types::schedule::{OverlapPolicy, parse_id};
use longrun_types::{Project, Schedule};
use serde::Deserialize;
use serde_json::{Value, json};

/// A schedules method, routed.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Create,
    List,
    Get(String),
    Update(String),
    Delete(String),
}

impl Call {
    /// The discovery id without `earthengine.projects.`.
    pub fn method_id(&self) -> &'static str {
        match self {
            Call::Create => "schedules.create",
            Call::List => "schedules.list",
            Call::Get(_) => "schedules.get",
            Call::Update(_) => "schedules.patch",
            Call::Delete(_) => "schedules.delete",
        }
    }

    /// Submit's permission to create, change and delete (a schedule submits); get's to read.
    pub fn permission(&self) -> Permission {
        match self {
            Call::Get(_) | Call::List => Permission::OperationsGet,
            Call::Create | Call::Update(_) | Call::Delete(_) => Permission::OperationsCreate,
        }
    }

    /// A create starts work later, so the gate holds it as it holds a submit.
    pub fn gate(&self) -> Gate {
        match self {
            Call::Create => Gate::Start,
            _ => Gate::Other,
        }
    }

    pub fn parameters(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Call::List => &[("pageSize", "page_size"), ("pageToken", "page_token")],
            Call::Update(_) => &[("updateMask", "update_mask")],
            _ => &[],
        }
    }
}

/// Routes `path` (after `projects/P/`) when it is a schedules method; `None` leaves it to
/// the other routers.
pub fn route(http: &http::Method, path: &str) -> Option<Result<Call, ApiError>> {
    if path == "schedules" {
        return Some(match *http {
            http::Method::GET => Ok(Call::List),
            http::Method::POST => Ok(Call::Create),
            _ => Err(ApiError::method_not_allowed(http, "GET, POST")),
        });
    }
    let id = path.strip_prefix("schedules/")?;
    if id.contains('/') {
        return Some(Err(ApiError::not_found_path(path)));
    }
    let id = match parse_id(id) {
        Ok(id) => id,
        Err(e) => return Some(Err(invalid_name(e))),
    };
    Some(match *http {
        http::Method::GET => Ok(Call::Get(id)),
        http::Method::PATCH => Ok(Call::Update(id)),
        http::Method::DELETE => Ok(Call::Delete(id)),
        _ => Err(ApiError::method_not_allowed(http, "GET, PATCH, DELETE")),
    })
}

const PROJECT: &str = "^projects/[^/]+$";
const SCHEDULE: &str = "^projects/[^/]+/schedules/[^/]+$";

/// The discovery entries of the schedules methods.
pub const METHODS: &[Method] = &[
    Method {
        resource: &["projects", "schedules"],
        name: "create",
        http: "POST",
        path: "{+parent}/schedules",
        param: ("parent", PROJECT),
        query: &[],
        request: Some("Any"),
        response: "Any",
        description: "Creates a schedule: a cron pattern in a time zone that submits an \
                      operation at each fire time (body: scheduleId, cron, timeZone, operation, \
                      overlapPolicy, paused).",
        example: "projects/p/schedules",
    },
    Method {
        resource: &["projects", "schedules"],
        name: "list",
        http: "GET",
        path: "{+parent}/schedules",
        param: ("parent", PROJECT),
        query: &[
            ("pageSize", "integer", Some("int32")),
            ("pageToken", "string", None),
        ],
        request: None,
        response: "Any",
        description: "Lists a project's schedules in name order.",
        example: "projects/p/schedules",
    },
    Method {
        resource: &["projects", "schedules"],
        name: "get",
        http: "GET",
        path: "{+name}",
        param: ("name", SCHEDULE),
        query: &[],
        request: None,
        response: "Any",
        description: "Gets a schedule.",
        example: "projects/p/schedules/s",
    },
    Method {
        resource: &["projects", "schedules"],
        name: "patch",
        http: "PATCH",
        path: "{+name}",
        param: ("name", SCHEDULE),
        query: &[("updateMask", "string", Some("google-fieldmask"))],
        request: Some("Any"),
        response: "Any",
        description: "Changes a schedule's cron, timeZone, operation, overlapPolicy or paused \
                      (pause and resume).",
        example: "projects/p/schedules/s",
    },
    Method {
        resource: &["projects", "schedules"],
        name: "delete",
        http: "DELETE",
        path: "{+name}",
        param: ("name", SCHEDULE),
        query: &[],
        request: None,
        response: "Empty",
        description: "Deletes a schedule; the operations it started stay.",
        example: "projects/p/schedules/s",
    },
];

/// A schedule as a create or patch body holds it. The output-only fields a get returns are
/// accepted and ignored, so a schedule read can be written back.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // the output-only fields are read to be ignored
pub struct Body {
    #[serde(alias = "schedule_id")]
    pub schedule_id: Option<String>,
    pub cron: Option<String>,
    #[serde(alias = "time_zone")]
    pub time_zone: Option<String>,
    pub operation: Option<Value>,
    #[serde(alias = "overlap_policy")]
    pub overlap_policy: Option<String>,
    pub paused: Option<bool>,
    pub name: Option<Value>,
    #[serde(alias = "next_fire_time")]
    pub next_fire_time: Option<Value>,
    #[serde(alias = "last_fire_time")]
    pub last_fire_time: Option<Value>,
    #[serde(alias = "last_operation")]
    pub last_operation: Option<Value>,
    #[serde(alias = "create_time")]
    pub create_time: Option<Value>,
    #[serde(alias = "update_time")]
    pub update_time: Option<Value>,
}

fn required(field: &'static str) -> ApiError {
    ApiError::invalid("INVALID_SCHEDULE", format!("{field} is required")).with("field", field)
}

fn policy(text: Option<&str>) -> Result<Option<OverlapPolicy>, ApiError> {
    match text {
        None | Some("") => Ok(None),
        Some(text) => OverlapPolicy::parse(text).map(Some).ok_or_else(|| {
            ApiError::invalid(
                "INVALID_SCHEDULE",
                format!("overlapPolicy must be SKIP, ALLOW or CANCEL_PREVIOUS, not `{text}`"),
            )
            .with("field", "overlapPolicy")
        }),
    }
}

/// An engine error, with the field a schedule's validation names (`cron`, `timeZone`,
/// `operation`) in its ErrorInfo.
pub fn error(e: longrun_engine::Error) -> ApiError {
    let field = match &e {
        longrun_engine::Error::InvalidArgument {
            reason: "INVALID_SCHEDULE",
            message,
        } => ["cron", "timeZone", "operation"]
            .into_iter()
            .find(|f| message.starts_with(f)),
        _ => None,
    };
    let api: ApiError = e.into();
    match field {
        Some(field) => api.with("field", field),
        None => api,
    }
}

/// What a create body asks for: the id and the spec.
pub fn spec(body: Body) -> Result<(Option<String>, Spec), ApiError> {
    let spec = Spec {
        cron: body.cron.ok_or_else(|| required("cron"))?,
        time_zone: body.time_zone,
        operation: body.operation.ok_or_else(|| required("operation"))?,
        overlap_policy: policy(body.overlap_policy.as_deref())?,
        paused: body.paused.unwrap_or(false),
    };
    Ok((body.schedule_id.filter(|id| !id.is_empty()), spec))
}

/// What a patch changes: the fields `mask` names (each must be one of those that can
/// change), or, without a mask, the fields the body holds.
pub fn patch(body: Body, mask: Option<&str>) -> Result<Patch, ApiError> {
    let Some(mask) = mask.filter(|m| !m.trim().is_empty()) else {
        return Ok(Patch {
            cron: body.cron,
            time_zone: body.time_zone,
            operation: body.operation,
            overlap_policy: policy(body.overlap_policy.as_deref())?,
            paused: body.paused,
        });
    };
    let mut patch = Patch::default();
    for field in mask.split(',').map(str::trim) {
        match field {
            "cron" => patch.cron = Some(body.cron.clone().ok_or_else(|| required("cron"))?),
            "timeZone" | "time_zone" => {
                patch.time_zone = Some(body.time_zone.clone().unwrap_or_default());
            }
            "operation" => {
                patch.operation = Some(
                    body.operation
                        .clone()
                        .ok_or_else(|| required("operation"))?,
                );
            }
            "overlapPolicy" | "overlap_policy" => {
                patch.overlap_policy =
                    Some(policy(body.overlap_policy.as_deref())?.unwrap_or_default());
            }
            "paused" => patch.paused = Some(body.paused.unwrap_or(false)),
            other => {
                return Err(ApiError::invalid(
                    "INVALID_UPDATE_MASK",
                    format!(
                        "updateMask names `{other}`; a schedule's cron, timeZone, operation, \
                         overlapPolicy and paused can be updated"
                    ),
                )
                .with("field", "updateMask"));
            }
        }
    }
    Ok(patch)
}

/// A schedule in its wire form.
pub fn render(s: &Schedule) -> Value {
    let mut out = json!({
        "name": s.name,
        "cron": s.cron,
        "timeZone": s.time_zone,
        "operation": s.operation,
        "overlapPolicy": s.overlap_policy.as_str(),
        "paused": s.paused,
        "createTime": s.create_time.to_string(),
        "updateTime": s.update_time.to_string(),
    });
    if let Some(t) = s.next_fire_time {
        out["nextFireTime"] = json!(t.to_string());
    }
    if let Some(t) = s.last_fire_time {
        out["lastFireTime"] = json!(t.to_string());
    }
    if let Some(op) = &s.last_operation {
        out["lastOperation"] = json!(op);
    }
    out
}

/// A schedule's name as a call gives it (`projects/P/schedules/ID`): its project and id.
pub fn split(name: &str) -> Result<(Project, String), ApiError> {
    let (project, id) = Schedule::split_name(name).ok_or_else(|| {
        ApiError::invalid(
            "INVALID_NAME",
            format!("`{name}` is not a schedule name like projects/P/schedules/ID"),
        )
    })?;
    Ok((
        crate::kit::names::project_of(project)?,
        parse_id(id).map_err(invalid_name)?,
    ))
}

/// A page size query parameter.
fn page_size(query: &Query) -> Result<i64, ApiError> {
    match query.get("pageSize") {
        None | Some("") => Ok(0),
        Some(text) => text.parse::<i64>().map_err(|_| {
            ApiError::invalid(
                "INVALID_PAGE_SIZE",
                format!("pageSize `{text}` is not an integer"),
            )
        }),
    }
}

/// Serves a schedules call whose permission and gate have been checked.
pub async fn handle(
    scheduler: &Scheduler,
    project: Project,
    call: Call,
    query: &Query,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let name = |id: &str| Schedule::name_of(&project, id);
    match call {
        Call::Create => {
            let (id, spec) = spec(body::json(bytes)?)?;
            let created = scheduler
                .create(&project, id.as_deref(), spec)
                .await
                .map_err(error)?;
            Ok(json_body(&render(&created)))
        }
        Call::Get(id) => Ok(json_body(&render(
            &scheduler.get(&name(&id)).await.map_err(error)?,
        ))),
        Call::List => {
            let page = scheduler
                .list(
                    &project,
                    page_size(query)?,
                    query.get("pageToken").unwrap_or(""),
                )
                .await
                .map_err(error)?;
            let mut out = json!({});
            if !page.schedules.is_empty() {
                out["schedules"] = page.schedules.iter().map(render).collect();
            }
            if let Some(token) = page.next_page_token {
                out["nextPageToken"] = json!(token);
            }
            Ok(json_body(&out))
        }
        Call::Update(id) => {
            let patch = patch(body::json(bytes)?, query.get("updateMask"))?;
            let updated = scheduler.update(&name(&id), patch).await.map_err(error)?;
            Ok(json_body(&render(&updated)))
        }
        Call::Delete(id) => {
            scheduler.delete(&name(&id)).await.map_err(error)?;
            Ok(empty())
        }
    }
}
