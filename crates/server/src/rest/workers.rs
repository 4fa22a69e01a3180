//! The REST worker endpoints (docs/workers.md): lease, heartbeat, complete, release.

use crate::kit::body::{self, parse_duration};
use crate::kit::error::ApiError;
use crate::kit::json::json_body;
use crate::kit::render;
use crate::workers::completion;
use crate::workers::lease_request;
use axum::response::Response;
use longrun_engine::{Engine, Report};
use longrun_types::operation::{Notification, Stage};
use longrun_types::{Name, Timestamp};
use render::Version;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LeaseBody {
    #[serde(default)]
    types: Vec<String>,
    #[serde(alias = "max_operations")]
    max_operations: Option<i64>,
    #[serde(alias = "wait_timeout")]
    wait_timeout: Option<String>,
    #[serde(alias = "lease_duration")]
    lease_duration: Option<String>,
}

/// An int64, which proto3 JSON writes as a string and accepts as a number too.
#[derive(Deserialize)]
#[serde(untagged)]
enum Int64 {
    Number(i64),
    Text(String),
}

impl Int64 {
    fn value(&self, field: &str) -> Result<i64, ApiError> {
        match self {
            Int64::Number(n) => Ok(*n),
            Int64::Text(t) => t.parse().map_err(|_| {
                ApiError::invalid(
                    "INVALID_REQUEST_BODY",
                    format!("{field} `{t}` is not an integer"),
                )
            }),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct StageBody {
    #[serde(alias = "display_name")]
    display_name: String,
    #[serde(default)]
    description: String,
    #[serde(alias = "complete_work_units")]
    complete_work_units: Option<Int64>,
    #[serde(alias = "total_work_units")]
    total_work_units: Option<Int64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotificationBody {
    #[serde(default)]
    topic: String,
    #[serde(default)]
    detail: String,
    #[serde(default)]
    severity: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HeartbeatBody {
    #[serde(alias = "lease_id")]
    lease_id: String,
    progress: Option<f64>,
    stages: Option<Vec<StageBody>>,
    #[serde(alias = "batch_eecu_usage_seconds")]
    batch_eecu_usage_seconds: Option<f64>,
    notifications: Option<Vec<NotificationBody>>,
    #[serde(alias = "destination_uris")]
    destination_uris: Option<Vec<String>>,
    #[serde(alias = "wait_for_cancel")]
    wait_for_cancel: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusBody {
    code: i32,
    #[serde(default)]
    message: String,
    #[serde(default)]
    details: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CompleteBody {
    #[serde(alias = "lease_id")]
    lease_id: String,
    response: Option<serde_json::Value>,
    error: Option<StatusBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ReleaseBody {
    #[serde(alias = "lease_id")]
    lease_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LeaseJson<'a> {
    operation: render::OperationJson<'a>,
    lease_id: &'a str,
    lease_expire_time: String,
    payload: &'a serde_json::Value,
}

#[derive(Serialize)]
struct LeasesJson<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    leases: Vec<LeaseJson<'a>>,
}

pub async fn lease(
    engine: &Engine,
    version: Version,
    worker: String,
    projects: Option<Vec<String>>,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let b: LeaseBody = body::json(bytes)?;
    let duration =
        |field: &str, text: Option<String>| text.map(|t| parse_duration(field, &t)).transpose();
    let request = lease_request(
        worker,
        b.types,
        b.max_operations,
        duration("waitTimeout", b.wait_timeout)?,
        duration("leaseDuration", b.lease_duration)?,
        projects,
    )?;
    let leased = engine.lease(request).await?;
    let leases = leased
        .iter()
        .map(|(op, payload)| {
            let lease = op.lease.as_ref().expect("leased operations hold a lease");
            LeaseJson {
                operation: render::operation(op, version),
                lease_id: &lease.id,
                lease_expire_time: lease.expire_time.to_string(),
                payload,
            }
        })
        .collect();
    Ok(json_body(&LeasesJson { leases }))
}

pub async fn heartbeat(engine: &Engine, name: &Name, bytes: &[u8]) -> Result<Response, ApiError> {
    let b: HeartbeatBody = body::json(bytes)?;
    let stages = b
        .stages
        .map(|stages| {
            stages
                .into_iter()
                .map(|s| {
                    Ok(Stage {
                        complete_work_units: s
                            .complete_work_units
                            .map_or(Ok(0), |v| v.value("completeWorkUnits"))?,
                        total_work_units: s
                            .total_work_units
                            .map_or(Ok(0), |v| v.value("totalWorkUnits"))?,
                        display_name: s.display_name,
                        description: s.description,
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()
        })
        .transpose()?;
    let notifications = b
        .notifications
        .map(|ns| {
            ns.into_iter()
                .map(|n| {
                    let severity = n.severity.unwrap_or_else(|| "SEVERITY_UNSPECIFIED".into());
                    if !["SEVERITY_UNSPECIFIED", "WARNING", "SEVERE"].contains(&severity.as_str()) {
                        return Err(ApiError::invalid(
                            "INVALID_REQUEST_BODY",
                            format!("severity `{severity}` is not SEVERITY_UNSPECIFIED, WARNING or SEVERE"),
                        ));
                    }
                    Ok(Notification {
                        topic: n.topic,
                        detail: n.detail,
                        severity,
                    })
                })
                .collect::<Result<Vec<_>, ApiError>>()
        })
        .transpose()?;
    let report = Report {
        progress: b.progress,
        stages,
        batch_eecu_usage_seconds: b.batch_eecu_usage_seconds,
        notifications,
        destination_uris: b.destination_uris,
    };
    let wait = b
        .wait_for_cancel
        .map(|t| parse_duration("waitForCancel", &t))
        .transpose()?;
    let beat = engine.heartbeat(name, &b.lease_id, report, wait).await?;
    Ok(json_body(&serde_json::json!({
        "cancelRequested": beat.cancel_requested,
        "leaseExpireTime": Timestamp::to_string(&beat.lease_expire_time),
    })))
}

pub async fn complete(
    engine: &Engine,
    types: &longrun_proto::any::Types,
    version: Version,
    name: &Name,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let b: CompleteBody = body::json(bytes)?;
    let result = match (b.response, b.error) {
        (Some(response), None) => Ok(completion::response(types, response)?),
        (None, Some(e)) => Err(completion::status(types, e.code, e.message, e.details)?),
        _ => {
            return Err(ApiError::invalid(
                "INVALID_REQUEST_BODY",
                "a completion carries exactly one of response and error",
            ));
        }
    };
    let op = engine.complete(name, &b.lease_id, result).await?;
    Ok(json_body(&render::operation(&op, version)))
}

/// `POST …:release` `{"leaseId"}`: hands the leased operation back (`Engine::release`);
/// answers the operation, PENDING again (CANCELLED if a cancel was requested).
pub async fn release(
    engine: &Engine,
    version: Version,
    name: &Name,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let b: ReleaseBody = body::json(bytes)?;
    let op = engine.release(name, &b.lease_id).await?;
    Ok(json_body(&render::operation(&op, version)))
}
