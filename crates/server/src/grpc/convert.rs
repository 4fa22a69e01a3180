//! Between the engine's records and the protobuf messages: operations (metadata and
//! response as `google.protobuf.Any`), statuses, errors (google.rpc.Status in
//! `grpc-status-details-bin`), JSON values, timestamps and durations.

use crate::kit::error::{ApiError, DOMAIN};
use crate::kit::render::Version;
use longrun_proto::google::earthengine::v1 as ee;
use longrun_proto::google::longrunning as lro;
use longrun_proto::google::rpc;
use longrun_proto::json::to_struct;
pub use longrun_proto::json::{from_value, to_value};
use longrun_proto::report;
use longrun_types::operation::{Outcome, Status};
use longrun_types::waiting::Reason;
use longrun_types::{Operation, State, Timestamp};
use prost::Message;
use prost_types::Any;
use serde_json::Value as Json;

pub use longrun_proto::any::STRUCT;
use longrun_proto::any::Types;
const ERROR_INFO: &str = "type.googleapis.com/google.rpc.ErrorInfo";

pub fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    let ms = t.millis();
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// A request's time, to the millisecond.
pub fn time(t: prost_types::Timestamp) -> Timestamp {
    Timestamp(
        t.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(t.nanos.clamp(0, 999_999_999) / 1_000_000)),
    )
}

/// A request's duration; negative or out of range is a client mistake.
pub fn duration(
    field: &'static str,
    d: Option<prost_types::Duration>,
) -> Result<Option<std::time::Duration>, ApiError> {
    d.map(|d| {
        std::time::Duration::try_from(d).map_err(|_| {
            ApiError::invalid(
                "INVALID_DURATION",
                format!("{field} must be a non-negative duration"),
            )
            .with("field", field)
        })
    })
    .transpose()
}

/// A stored `Any` (a detail or a response, in JSON form) as a binary `Any`. Everything
/// accepted since completions are checked (`crate::workers::completion`) converts while its type is
/// described; a record kept from before, or of a type no longer described (a descriptor set
/// taken out of the configuration), travels as the Struct of its JSON.
fn any(types: &Types, json: &Json) -> Any {
    types.to_any(json).unwrap_or_else(|_| Any {
        type_url: STRUCT.into(),
        value: to_struct(json).encode_to_vec(),
    })
}

/// A kept status as a google.rpc.Status, its details as binary `Any`s.
pub fn status(types: &Types, s: &Status) -> rpc::Status {
    rpc::Status {
        code: s.code,
        message: s.message.clone(),
        details: s.details.iter().map(|d| any(types, d)).collect(),
    }
}

fn state(s: State) -> ee::operation_metadata::State {
    use ee::operation_metadata::State as S;
    match s {
        State::Pending => S::Pending,
        State::Running => S::Running,
        State::Cancelling => S::Cancelling,
        State::Succeeded => S::Succeeded,
        State::Cancelled => S::Cancelled,
        State::Failed => S::Failed,
    }
}

pub fn metadata(op: &Operation) -> ee::OperationMetadata {
    ee::OperationMetadata {
        state: state(op.state) as i32,
        description: op.description.clone(),
        r#type: op.op_type.clone(),
        priority: op.priority,
        create_time: Some(timestamp(op.create_time)),
        update_time: Some(timestamp(op.update_time)),
        start_time: op.start_time.map(timestamp),
        end_time: op.end_time.map(timestamp),
        progress: op.progress,
        stages: op.stages.iter().map(report::stage).collect(),
        attempt: op.attempt,
        script_uri: op.script_uri.clone(),
        destination_uris: op.destination_uris.clone(),
        notifications: op.notifications.iter().map(report::notification).collect(),
        batch_eecu_usage_seconds: op.batch_eecu_usage_seconds,
        concurrency_key: op.concurrency_key.clone().unwrap_or_default(),
        retry_of: op
            .retry_of
            .as_ref()
            .map_or_else(String::new, |n| n.to_string()),
        schedule_time: op.schedule_time.map(timestamp),
        start_timeout: op.start_timeout_ms.map(|ms| prost_types::Duration {
            seconds: ms / 1000,
            nanos: (ms % 1000) as i32 * 1_000_000,
        }),
        waiting_reason: op.waiting_reason.map_or(0, |r| waiting_reason(r) as i32),
        schedule: op.schedule.clone().unwrap_or_default(),
        parent: op
            .parent
            .as_ref()
            .map_or_else(String::new, |n| n.to_string()),
    }
}

fn waiting_reason(r: Reason) -> ee::operation_metadata::WaitingReason {
    use ee::operation_metadata::WaitingReason as W;
    match r {
        Reason::Scheduled => W::Scheduled,
        Reason::Paused => W::Paused,
        Reason::Parent => W::Parent,
        Reason::NoWorker => W::NoWorker,
        Reason::ProjectRunningLimit => W::ProjectRunningLimit,
        Reason::ExportLimit => W::ExportLimit,
        Reason::KeyLimit => W::KeyLimit,
        Reason::Queued => W::Queued,
    }
}

/// An operation as google.longrunning's message; its response and error details as the
/// binary `Any`s of their types (`types`).
pub fn operation(types: &Types, op: &Operation) -> lro::Operation {
    lro::Operation {
        name: op.name.to_string(),
        metadata: Some(Any {
            type_url: Version::V1.metadata_type().into(),
            value: metadata(op).encode_to_vec(),
        }),
        done: op.done(),
        result: match &op.outcome {
            Some(Outcome::Error(s)) => Some(lro::operation::Result::Error(status(types, s))),
            Some(Outcome::Response(r)) => Some(lro::operation::Result::Response(any(types, r))),
            None => None,
        },
    }
}

/// An error as gRPC carries it: the code, the message, and the google.rpc.Status with its
/// ErrorInfo in `grpc-status-details-bin`.
pub fn error(e: ApiError) -> tonic::Status {
    let info = rpc::ErrorInfo {
        reason: e.reason.to_string(),
        domain: DOMAIN.to_string(),
        metadata: e
            .metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    };
    let mut any_details = vec![Any {
        type_url: ERROR_INFO.into(),
        value: info.encode_to_vec(),
    }];
    if let Some((description, url)) = e.help.as_deref() {
        let help = rpc::Help {
            links: vec![rpc::help::Link {
                description: description.clone(),
                url: url.clone(),
            }],
        };
        any_details.push(Any {
            type_url: "type.googleapis.com/google.rpc.Help".into(),
            value: help.encode_to_vec(),
        });
    }
    let details = rpc::Status {
        code: e.code as i32,
        message: e.message.clone(),
        details: any_details,
    };
    tonic::Status::with_details(
        tonic::Code::from_i32(e.code as i32),
        e.message,
        details.encode_to_vec().into(),
    )
}

pub fn engine_error(e: longrun_engine::Error) -> tonic::Status {
    error(ApiError::from(e))
}
