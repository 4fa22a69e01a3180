//! Between the engine's records and the protobuf messages: operations (metadata and
//! response as `google.protobuf.Any`), statuses, errors (google.rpc.Status in
//! `grpc-status-details-bin`), JSON values, timestamps and durations.

use crate::error::{ApiError, DOMAIN};
use crate::rest::render::Version;
use longrun_proto::google::earthengine::v1 as ee;
use longrun_proto::google::longrunning as lro;
use longrun_proto::google::rpc;
use longrun_proto::json::{from_struct, to_struct};
pub use longrun_proto::json::{from_value, to_value};
use longrun_proto::report;
use longrun_types::operation::{Outcome, Status};
use longrun_types::{Operation, State, Timestamp};
use prost::Message;
use prost_types::{Any, Struct};
use serde_json::Value as Json;

pub const STRUCT: &str = "type.googleapis.com/google.protobuf.Struct";
const VALUE: &str = "type.googleapis.com/google.protobuf.Value";
const EMPTY: &str = "type.googleapis.com/google.protobuf.Empty";
const ERROR_INFO: &str = "type.googleapis.com/google.rpc.ErrorInfo";

pub fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    let ms = t.millis();
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
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

/// A detail of a status, kept as JSON with `@type`: ErrorInfo is encoded as itself; any
/// other detail travels as a Struct of its JSON.
fn detail(json: &Json) -> Any {
    if json["@type"] == ERROR_INFO {
        let text = |k: &str| json[k].as_str().unwrap_or_default().to_string();
        let info = rpc::ErrorInfo {
            reason: text("reason"),
            domain: text("domain"),
            metadata: json["metadata"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                v.as_str().map_or_else(|| v.to_string(), str::to_string),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        return Any {
            type_url: ERROR_INFO.into(),
            value: info.encode_to_vec(),
        };
    }
    Any {
        type_url: STRUCT.into(),
        value: to_struct(json).encode_to_vec(),
    }
}

pub fn status(s: &Status) -> rpc::Status {
    rpc::Status {
        code: s.code,
        message: s.message.clone(),
        details: s.details.iter().map(detail).collect(),
    }
}

/// A status a worker sent, in the record's JSON form for its details.
pub fn status_from(s: rpc::Status) -> Status {
    Status {
        code: s.code,
        message: s.message,
        details: s
            .details
            .iter()
            .map(|any| match any.type_url.as_str() {
                ERROR_INFO => rpc::ErrorInfo::decode(any.value.as_slice())
                    .map(|i| {
                        serde_json::json!({"@type": ERROR_INFO, "reason": i.reason,
                                           "domain": i.domain, "metadata": i.metadata})
                    })
                    .unwrap_or(Json::Null),
                STRUCT => Struct::decode(any.value.as_slice())
                    .map(|s| from_struct(&s))
                    .unwrap_or(Json::Null),
                other => serde_json::json!({"@type": other}),
            })
            .collect(),
    }
}

/// The stored response (an `Any` in JSON form) as an `Any`. A Struct stays a Struct (a
/// value that is not an object becomes a google.protobuf.Value); an Empty stays Empty; a
/// response of any other type, whose schema longrun does not know, travels as the Struct
/// of its JSON form.
fn response(json: &Json) -> Any {
    match json["@type"].as_str() {
        Some(STRUCT) => match &json["value"] {
            object @ Json::Object(_) => Any {
                type_url: STRUCT.into(),
                value: to_struct(object).encode_to_vec(),
            },
            other => Any {
                type_url: VALUE.into(),
                value: to_value(other).encode_to_vec(),
            },
        },
        Some(EMPTY) if json.as_object().is_some_and(|o| o.len() == 1) => Any {
            type_url: EMPTY.into(),
            value: Vec::new(),
        },
        _ => Any {
            type_url: STRUCT.into(),
            value: to_struct(json).encode_to_vec(),
        },
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
    }
}

pub fn operation(op: &Operation) -> lro::Operation {
    lro::Operation {
        name: op.name.to_string(),
        metadata: Some(Any {
            type_url: Version::V1.metadata_type().into(),
            value: metadata(op).encode_to_vec(),
        }),
        done: op.done(),
        result: match &op.outcome {
            Some(Outcome::Error(s)) => Some(lro::operation::Result::Error(status(s))),
            Some(Outcome::Response(r)) => Some(lro::operation::Result::Response(response(r))),
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
    let details = rpc::Status {
        code: e.code as i32,
        message: e.message.clone(),
        details: vec![Any {
            type_url: ERROR_INFO.into(),
            value: info.encode_to_vec(),
        }],
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
