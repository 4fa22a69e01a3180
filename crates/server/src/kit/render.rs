//! The wire form of an operation (docs/operations.md#the-operation-resource), written with serde
//! structs so a list page renders without building intermediate JSON trees.

use longrun_types::operation::{Notification, Outcome, Stage, Status};
use longrun_types::{Operation, Timestamp};
use serde::Serialize;

/// The API version of the request; it picks the metadata's `@type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V1beta,
    V1alpha,
}

impl Version {
    pub fn from_prefix(segment: &str) -> Option<Version> {
        match segment {
            "v1" => Some(Version::V1),
            "v1beta" => Some(Version::V1beta),
            "v1alpha" => Some(Version::V1alpha),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V1beta => "v1beta",
            Version::V1alpha => "v1alpha",
        }
    }

    pub fn metadata_type(self) -> &'static str {
        match self {
            Version::V1 => "type.googleapis.com/google.earthengine.v1.OperationMetadata",
            Version::V1beta => "type.googleapis.com/google.earthengine.v1beta.OperationMetadata",
            Version::V1alpha => "type.googleapis.com/google.earthengine.v1alpha.OperationMetadata",
        }
    }
}

/// A timestamp in its wire form.
pub(crate) struct Time(pub(crate) Timestamp);

impl Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

#[derive(Serialize)]
pub struct OperationJson<'a> {
    name: &'a str,
    metadata: Metadata<'a>,
    done: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a Status>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<&'a serde_json::Value>,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata<'a> {
    #[serde(rename = "@type")]
    type_url: &'static str,
    state: &'static str,
    description: &'a str,
    #[serde(rename = "type")]
    op_type: &'a str,
    priority: i32,
    create_time: Time,
    update_time: Time,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<Time>,
    #[serde(skip_serializing_if = "is_zero")]
    progress: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stages: Vec<StageJson<'a>>,
    attempt: i32,
    #[serde(skip_serializing_if = "str::is_empty")]
    script_uri: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    destination_uris: &'a [String],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notifications: Vec<NotificationJson<'a>>,
    #[serde(skip_serializing_if = "is_zero")]
    batch_eecu_usage_seconds: f64,
    /// longrun's own: the submit's `concurrencyKey` (docs/projects.md#concurrency-keys).
    #[serde(skip_serializing_if = "Option::is_none")]
    concurrency_key: Option<&'a str>,
    /// longrun's own: the operation this one retries (docs/operations.md#retry).
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_of: Option<&'a str>,
    /// longrun's own: the operation this one is a child of
    /// (docs/operations.md#parents-and-children).
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<&'a str>,
    /// longrun's own: the submit's `scheduleTime` and `startTimeout`, and why a PENDING
    /// operation waits (docs/operations.md#delayed-start).
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule_time: Option<Time>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    waiting_reason: Option<&'static str>,
    /// longrun's own: the schedule that started it (docs/schedules.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StageJson<'a> {
    display_name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    /// int64 is a JSON string in proto3 JSON.
    complete_work_units: String,
    total_work_units: String,
}

#[derive(Serialize)]
struct NotificationJson<'a> {
    topic: &'a str,
    detail: &'a str,
    severity: &'a str,
}

impl<'a> StageJson<'a> {
    fn from(stage: &'a Stage) -> StageJson<'a> {
        StageJson {
            display_name: &stage.display_name,
            description: &stage.description,
            complete_work_units: stage.complete_work_units.to_string(),
            total_work_units: stage.total_work_units.to_string(),
        }
    }
}

impl<'a> NotificationJson<'a> {
    fn from(n: &'a Notification) -> NotificationJson<'a> {
        NotificationJson {
            topic: &n.topic,
            detail: &n.detail,
            severity: &n.severity,
        }
    }
}

pub fn operation(op: &Operation, version: Version) -> OperationJson<'_> {
    OperationJson {
        name: op.name.as_str(),
        metadata: Metadata {
            type_url: version.metadata_type(),
            state: op.state.as_str(),
            description: &op.description,
            op_type: &op.op_type,
            priority: op.priority,
            create_time: Time(op.create_time),
            update_time: Time(op.update_time),
            start_time: op.start_time.map(Time),
            end_time: op.end_time.map(Time),
            progress: op.progress,
            stages: op.stages.iter().map(StageJson::from).collect(),
            attempt: op.attempt,
            script_uri: &op.script_uri,
            destination_uris: &op.destination_uris,
            notifications: op
                .notifications
                .iter()
                .map(NotificationJson::from)
                .collect(),
            batch_eecu_usage_seconds: op.batch_eecu_usage_seconds,
            concurrency_key: op.concurrency_key.as_deref(),
            retry_of: op.retry_of.as_ref().map(|n| n.as_str()),
            parent: op.parent.as_ref().map(|n| n.as_str()),
            schedule_time: op.schedule_time.map(Time),
            start_timeout: op.start_timeout_ms.map(|ms| {
                longrun_types::duration::format(std::time::Duration::from_millis(ms.max(0) as u64))
            }),
            waiting_reason: op.waiting_reason.map(|r| r.as_str()),
            schedule: op.schedule.as_deref(),
        },
        done: op.done(),
        error: match &op.outcome {
            Some(Outcome::Error(status)) => Some(status),
            _ => None,
        },
        response: match &op.outcome {
            Some(Outcome::Response(value)) => Some(value),
            _ => None,
        },
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListJson<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<OperationJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}
