//! Projects (docs/projects.md): the `[projects]` settings, Earth Engine's project
//! config (`GET`/`PATCH …/projects/{p}/config`, `maxConcurrentExports`), routed here by the
//! REST router and served from the store, which enforces the export cap when it leases;
//! and the registration gate (`gate`), which every REST and gRPC call passes after its
//! permission check.

mod gate;
pub mod registry;
pub use gate::valid_date;
pub use gate::{Gate, gate};
pub(crate) use registry::list as list_registrations;

use crate::auth::iam::Permission;
use crate::kit::error::ApiError;
use crate::kit::json::json_body;
use crate::kit::method::Method;
use axum::response::Response;
use longrun_store::Projects;
use longrun_types::Project;
use serde::Deserialize;

/// `[projects]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The plan maximum of concurrent exports per project (`planMaxConcurrentExports`):
    /// a project's `maxConcurrentExports` may not exceed it, and 0 there means this.
    /// Must be at least 1 (default 100).
    pub plan_max_concurrent_exports: u64,
    /// Refuse calls on projects the registry does not hold, and new work of noncommercial
    /// projects registered before `eligibility_cutoff` whose eligibility is not verified
    /// (see `gate`). Default false.
    pub require_registration: bool,
    /// The page a refused caller is sent to (a `google.rpc.Help` link).
    pub help_url: String,
    /// `YYYY-MM-DD`: noncommercial projects registered strictly before this day must have
    /// their eligibility verified to start work (default 2025-04-15).
    pub eligibility_cutoff: String,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            plan_max_concurrent_exports: 100,
            require_registration: false,
            help_url: "https://developers.google.com/earth-engine/guides/access".into(),
            eligibility_cutoff: "2025-04-15".into(),
        }
    }
}

impl Settings {
    /// Refuses settings that cannot work (a plan maximum of 0 would allow no export).
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.plan_max_concurrent_exports >= 1,
            "[projects] plan_max_concurrent_exports must be at least 1"
        );
        anyhow::ensure!(
            valid_date(&self.eligibility_cutoff),
            "[projects] eligibility_cutoff must be a date YYYY-MM-DD, not `{}`",
            self.eligibility_cutoff
        );
        Ok(())
    }
}

/// A projects method, routed.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    GetConfig,
    UpdateConfig,
    /// `GET …/registration`: the project's registry entry.
    Describe,
    /// `POST …/registration`.
    Register,
    /// `PATCH …/registration`.
    UpdateRegistration,
    /// `DELETE …/registration`.
    Unregister,
}

impl Call {
    /// The discovery id without `earthengine.projects.`.
    pub fn method_id(&self) -> String {
        match self {
            Call::GetConfig => "getConfig",
            Call::UpdateConfig => "updateConfig",
            Call::Describe => "registration.get",
            Call::Register => "registration.create",
            Call::UpdateRegistration => "registration.patch",
            Call::Unregister => "registration.delete",
        }
        .to_string()
    }

    /// Get with the viewer role, update with the admin role (docs/projects.md#project-config).
    pub fn permission(&self) -> Permission {
        match self {
            Call::GetConfig => Permission::ConfigGet,
            Call::UpdateConfig => Permission::ConfigUpdate,
            _ => Permission::ProjectsManage,
        }
    }

    /// What the registration gate holds the call to: the config is the project's like any
    /// other call; the registry's own calls are never refused (managing it lifts the gate).
    pub fn gate(&self) -> Option<Gate> {
        match self {
            Call::GetConfig | Call::UpdateConfig => Some(Gate::Other),
            Call::Describe | Call::Register | Call::UpdateRegistration | Call::Unregister => None,
        }
    }

    /// The query parameters the call takes besides the system ones: (camelCase, snake_case).
    pub fn parameters(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            Call::UpdateConfig => &[("updateMask", "update_mask")],
            _ => &[],
        }
    }
}

/// Routes `path` (after `projects/P/`) when it is a projects method; `None` leaves it to
/// the other routers.
pub fn route(http: &http::Method, path: &str) -> Option<Result<Call, ApiError>> {
    if path == "registration" {
        return Some(match *http {
            http::Method::GET => Ok(Call::Describe),
            http::Method::POST => Ok(Call::Register),
            http::Method::PATCH => Ok(Call::UpdateRegistration),
            http::Method::DELETE => Ok(Call::Unregister),
            _ => Err(ApiError::method_not_allowed(
                http,
                "GET, POST, PATCH, DELETE",
            )),
        });
    }
    if path != "config" {
        return None;
    }
    Some(match *http {
        http::Method::GET => Ok(Call::GetConfig),
        http::Method::PATCH => Ok(Call::UpdateConfig),
        _ => Err(ApiError::method_not_allowed(http, "GET, PATCH")),
    })
}

const CONFIG: &str = "^projects/[^/]+/config$";
const REGISTRATION: &str = "^projects/[^/]+/registration$";

/// The discovery entries of the projects methods (the Earth Engine client's names).
pub const METHODS: &[Method] = &[
    Method {
        resource: &["projects"],
        name: "getConfig",
        http: "GET",
        path: "{+name}",
        param: ("name", CONFIG),
        query: &[],
        request: None,
        response: "Any",
        description: "A project's ProjectConfig: registrationState, maxConcurrentExports, \
                      planMaxConcurrentExports.",
        example: "projects/p/config",
    },
    Method {
        resource: &["projects"],
        name: "updateConfig",
        http: "PATCH",
        path: "{+name}",
        param: ("name", CONFIG),
        query: &[("updateMask", "string", Some("google-fieldmask"))],
        request: Some("Any"),
        response: "Any",
        description: "Sets maxConcurrentExports (updateMask=max_concurrent_exports); \
                      0 means the plan maximum.",
        example: "projects/p/config",
    },
    Method {
        resource: &["projects"],
        name: "getRegistration",
        http: "GET",
        path: "{+name}",
        param: ("name", REGISTRATION),
        query: &[],
        request: None,
        response: "ProjectRegistration",
        description: "The project's registry entry: plan, registration day, eligibility (a longrun extension).",
        example: "projects/p/registration",
    },
    Method {
        resource: &["projects"],
        name: "register",
        http: "POST",
        path: "{+name}",
        param: ("name", REGISTRATION),
        query: &[],
        request: Some("ProjectRegistration"),
        response: "ProjectRegistration",
        description: "Registers the project (plan required; registeredOn defaults to today, eligibility to unverified).",
        example: "projects/p/registration",
    },
    Method {
        resource: &["projects"],
        name: "updateRegistration",
        http: "PATCH",
        path: "{+name}",
        param: ("name", REGISTRATION),
        query: &[],
        request: Some("ProjectRegistration"),
        response: "ProjectRegistration",
        description: "Changes the fields given of the project's registry entry.",
        example: "projects/p/registration",
    },
    Method {
        resource: &["projects"],
        name: "unregister",
        http: "DELETE",
        path: "{+name}",
        param: ("name", REGISTRATION),
        query: &[],
        request: None,
        response: "Empty",
        description: "Removes the project's registry entry.",
        example: "projects/p/registration",
    },
    Method {
        resource: &["projectRegistrations"],
        name: "list",
        http: "GET",
        path: "projectRegistrations",
        param: ("", ""),
        query: &[],
        request: None,
        response: "ListProjectRegistrationsResponse",
        description: "Every project's registry entry, by project id (needs the permission on every project).",
        example: "projectRegistrations",
    },
];

/// The body of `PATCH …/config`: Earth Engine's ProjectConfig; only
/// `maxConcurrentExports` is writable, the rest is read-only and ignored like Google's
/// output-only fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConfigBody {
    #[allow(dead_code)]
    name: Option<String>,
    #[serde(alias = "max_concurrent_exports")]
    max_concurrent_exports: Option<serde_json::Value>,
    #[allow(dead_code)]
    registration_state: Option<serde_json::Value>,
    #[allow(dead_code)]
    plan_max_concurrent_exports: Option<serde_json::Value>,
}

/// Serves a projects call whose permission has been checked, on the registry and settings
/// of `store`.
pub async fn handle(
    settings: &Settings,
    store: &dyn Projects,
    project: Project,
    call: Call,
    query: &crate::kit::body::Query,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let plan = settings.plan_max_concurrent_exports;
    match call {
        Call::GetConfig => {}
        Call::Describe | Call::Register | Call::UpdateRegistration | Call::Unregister => {
            return registry::handle(store, project, call, bytes).await;
        }
        Call::UpdateConfig => {
            let mask = query.get("updateMask").unwrap_or("");
            for field in mask.split(',').filter(|f| !f.is_empty()) {
                if !matches!(
                    field.trim(),
                    "max_concurrent_exports" | "maxConcurrentExports"
                ) {
                    return Err(ApiError::invalid(
                        "INVALID_UPDATE_MASK",
                        format!(
                            "updateMask names `{field}`; only max_concurrent_exports can be updated"
                        ),
                    )
                    .with("field", "updateMask"));
                }
            }
            if mask.trim().is_empty() {
                return Err(ApiError::invalid(
                    "INVALID_UPDATE_MASK",
                    "updateMask is required: updateMask=max_concurrent_exports".to_string(),
                )
                .with("field", "updateMask"));
            }
            let body: ConfigBody = crate::kit::body::json(bytes)?;
            let value = exports_value(body.max_concurrent_exports.as_ref(), plan)?;
            store
                .set_max_concurrent_exports(project.as_str(), value)
                .await
                .map_err(storage)?;
        }
    }
    let own = store
        .max_concurrent_exports(project.as_str())
        .await
        .map_err(storage)?;
    let registration = store
        .registration(project.as_str())
        .await
        .map_err(storage)?;
    let state = match registration {
        None => "NOT_REGISTERED",
        Some(r) if r.commercial => "REGISTERED_COMMERCIALLY",
        Some(_) => "REGISTERED_NOT_COMMERCIALLY",
    };
    Ok(json_body(&serde_json::json!({
        "name": format!("projects/{}/config", project.as_str()),
        "registrationState": state,
        "maxConcurrentExports": own,
        "planMaxConcurrentExports": plan,
    })))
}

/// A store failure as the engine maps it (400 for text no store holds, 503 when storage is
/// unavailable, else 500, logged).
pub(crate) fn storage(e: longrun_store::Error) -> ApiError {
    longrun_engine::Error::from(e).into()
}

/// `maxConcurrentExports` of a PATCH body: an integer (or its decimal string, as proto3
/// JSON allows for int64) from 0 to `plan`; absent means 0, the plan maximum.
fn exports_value(value: Option<&serde_json::Value>, plan: u64) -> Result<u64, ApiError> {
    let bad = |why: String| {
        ApiError::invalid("INVALID_MAX_CONCURRENT_EXPORTS", why)
            .with("field", "maxConcurrentExports")
    };
    let number = match value {
        None | Some(serde_json::Value::Null) => return Ok(0),
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => s.parse::<i64>().ok(),
        Some(_) => None,
    };
    let Some(number) = number else {
        return Err(bad(format!(
            "maxConcurrentExports must be an integer, not {}",
            value.map(|v| v.to_string()).unwrap_or_default()
        )));
    };
    if number < 0 {
        return Err(bad(format!(
            "maxConcurrentExports must be >= 0, not {number}"
        )));
    }
    if number as u64 > plan {
        return Err(bad(format!(
            "maxConcurrentExports {number} is above the plan maximum {plan}"
        )));
    }
    Ok(number as u64)
}
