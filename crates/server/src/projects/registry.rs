//! The project registry over REST (docs/projects.md#registry), for `longrun projects --server`:
//! `GET|POST|PATCH|DELETE /{v}/projects/P/registration` with `longrun.projects.manage` on
//! P, and `GET /{v}/projectRegistrations` with it on every project (`*`). The wire form of
//! an entry: `{"project", "plan": "commercial"|"noncommercial", "registeredOn":
//! "YYYY-MM-DD", "eligibility": "verified"|"unverified"}`.

use super::{Call, storage, valid_date};
use crate::kit::error::ApiError;
use crate::kit::json::json_body;
use axum::response::Response;
use longrun_store::{Projects, Registration};
use longrun_types::{Code, Project, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

/// An entry as the API shows it.
pub fn render(r: &Registration) -> Value {
    json!({
        "project": r.project,
        "plan": if r.commercial { "commercial" } else { "noncommercial" },
        "registeredOn": r.registered_on,
        "eligibility": if r.eligibility_verified { "verified" } else { "unverified" },
    })
}

/// The body of a register or update: every field optional (register: plan required;
/// `registeredOn` defaults to today (UTC); `eligibility` to unverified).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Body {
    pub plan: Option<String>,
    pub registered_on: Option<String>,
    pub eligibility: Option<String>,
}

impl Body {
    /// Applies the body to `base` (a new entry, or the stored one), checking each field.
    pub fn apply(self, mut base: Registration) -> Result<Registration, ApiError> {
        if let Some(plan) = self.plan {
            base.commercial = match plan.as_str() {
                "commercial" => true,
                "noncommercial" => false,
                other => {
                    return Err(ApiError::invalid(
                        "INVALID_PLAN",
                        format!("plan is commercial or noncommercial, not `{other}`"),
                    )
                    .with("field", "plan"));
                }
            };
        }
        if let Some(day) = self.registered_on {
            if !valid_date(&day) {
                return Err(ApiError::invalid(
                    "INVALID_DATE",
                    format!("registeredOn must be a date YYYY-MM-DD, not `{day}`"),
                )
                .with("field", "registeredOn"));
            }
            base.registered_on = day;
        }
        if let Some(eligibility) = self.eligibility {
            base.eligibility_verified = match eligibility.as_str() {
                "verified" => true,
                "unverified" => false,
                other => {
                    return Err(ApiError::invalid(
                        "INVALID_ELIGIBILITY",
                        format!("eligibility is verified or unverified, not `{other}`"),
                    )
                    .with("field", "eligibility"));
                }
            };
        }
        Ok(base)
    }
}

/// Today (UTC) as `YYYY-MM-DD`.
pub fn today() -> String {
    Timestamp::now().to_string()[..10].to_string()
}

fn not_registered(project: &Project) -> ApiError {
    ApiError::new(
        Code::NotFound,
        "PROJECT_NOT_REGISTERED",
        format!("project {} is not registered", project.as_str()),
    )
    .with("project", project.as_str())
}

/// Serves a registry call on one project whose permission has been checked.
pub async fn handle(
    store: &dyn Projects,
    project: Project,
    call: Call,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let p = project.as_str();
    match call {
        Call::Describe => {
            let r = store.registration(p).await.map_err(storage)?;
            Ok(json_body(&render(
                &r.ok_or_else(|| not_registered(&project))?,
            )))
        }
        Call::Register => {
            let body: Body = crate::kit::body::json(bytes)?;
            if body.plan.is_none() {
                return Err(ApiError::invalid(
                    "INVALID_PLAN",
                    "plan is required: commercial or noncommercial",
                )
                .with("field", "plan"));
            }
            let r = body.apply(Registration {
                project: p.to_string(),
                commercial: true,
                registered_on: today(),
                eligibility_verified: false,
            })?;
            if !store.register_project(r.clone()).await.map_err(storage)? {
                return Err(ApiError::new(
                    Code::AlreadyExists,
                    "PROJECT_ALREADY_REGISTERED",
                    format!("project {p} is already registered"),
                )
                .with("project", p));
            }
            tracing::info!(project = p, "project registered");
            Ok(json_body(&render(&r)))
        }
        Call::UpdateRegistration => {
            let body: Body = crate::kit::body::json(bytes)?;
            let stored = store.registration(p).await.map_err(storage)?;
            let r = body.apply(stored.ok_or_else(|| not_registered(&project))?)?;
            if !store.update_project(r.clone()).await.map_err(storage)? {
                return Err(not_registered(&project));
            }
            Ok(json_body(&render(&r)))
        }
        Call::Unregister => {
            if !store.unregister_project(p).await.map_err(storage)? {
                return Err(not_registered(&project));
            }
            tracing::info!(project = p, "project unregistered");
            Ok(json_body(&json!({})))
        }
        Call::GetConfig | Call::UpdateConfig => unreachable!("routed to the config"),
    }
}

/// `GET /{v}/projectRegistrations`: every entry, by project id (the caller's permission on
/// every project, `*`, checked).
pub async fn list(store: &dyn Projects) -> Result<Response, ApiError> {
    let all = store.registrations().await.map_err(storage)?;
    Ok(json_body(&json!({
        "registrations": all.iter().map(render).collect::<Vec<_>>(),
    })))
}
