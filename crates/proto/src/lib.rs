//! Messages and services generated from `proto/`: Google's operations, status and error
//! details, Earth Engine's operation metadata, and longrun's submission and worker services.

pub mod google {
    pub mod longrunning {
        tonic::include_proto!("google.longrunning");
    }
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
    pub mod earthengine {
        pub mod v1 {
            tonic::include_proto!("google.earthengine.v1");
        }
    }
}

pub mod longrun {
    pub mod v1 {
        tonic::include_proto!("longrun.v1");
    }
}

pub mod any;

/// The largest gRPC message either side sends or accepts, in bytes (4 MiB, gRPC's usual
/// default): the server refuses a larger one with RESOURCE_EXHAUSTED and states the limit
/// in the `Work` stream's initial metadata ([`MAX_MESSAGE_BYTES_HEADER`]); workers split
/// their batches below it, and fail an operation whose single result passes it.
pub const MAX_MESSAGE_BYTES: usize = 4 << 20;

/// The metadata key of the `Work` stream's response headers that states [`MAX_MESSAGE_BYTES`].
pub const MAX_MESSAGE_BYTES_HEADER: &str = "longrun-max-message-bytes";

/// The encoded descriptors of every file here, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));

/// JSON values as `google.protobuf.Value` and back (proto3's JSON mapping of Struct).
pub mod json {
    use prost_types::value::Kind;
    use prost_types::{ListValue, Struct, Value};
    use serde_json::Value as Json;

    pub fn to_value(json: &Json) -> Value {
        let kind = match json {
            Json::Null => Kind::NullValue(0),
            Json::Bool(b) => Kind::BoolValue(*b),
            Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
            Json::String(s) => Kind::StringValue(s.clone()),
            Json::Array(items) => Kind::ListValue(ListValue {
                values: items.iter().map(to_value).collect(),
            }),
            Json::Object(_) => Kind::StructValue(to_struct(json)),
        };
        Value { kind: Some(kind) }
    }

    /// The fields of a JSON object (anything else is an empty struct).
    pub fn to_struct(json: &Json) -> Struct {
        Struct {
            fields: json
                .as_object()
                .map(|o| o.iter().map(|(k, v)| (k.clone(), to_value(v))).collect())
                .unwrap_or_default(),
        }
    }

    /// A Value as JSON. Numbers are doubles in a Value: whole ones come back as integers
    /// (as they most likely went in); NaN and infinities, which JSON lacks, as null.
    pub fn from_value(value: &Value) -> Json {
        match &value.kind {
            None | Some(Kind::NullValue(_)) => Json::Null,
            Some(Kind::BoolValue(b)) => Json::Bool(*b),
            Some(Kind::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => {
                Json::from(*n as i64)
            }
            Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n)
                .map(Json::Number)
                .unwrap_or(Json::Null),
            Some(Kind::StringValue(s)) => Json::String(s.clone()),
            Some(Kind::ListValue(l)) => Json::Array(l.values.iter().map(from_value).collect()),
            Some(Kind::StructValue(s)) => from_struct(s),
        }
    }

    pub fn from_struct(s: &Struct) -> Json {
        Json::Object(
            s.fields
                .iter()
                .map(|(k, v)| (k.clone(), from_value(v)))
                .collect(),
        )
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn json_survives_the_round_trip() {
            let json = serde_json::json!({
                "a": [1, 2.5, "x", null, true, {"b": {}}], "n": -7, "big": 1e300, "s": "",
            });
            assert_eq!(from_value(&to_value(&json)), json);
        }
    }
}

/// Stages and notifications between the records' form and the messages', one place for the
/// server (metadata, reports received) and the worker SDK (reports sent).
pub mod report {
    use crate::google::earthengine::v1 as ee;
    use longrun_types::operation::{Notification, Stage};

    pub fn stage(s: &Stage) -> ee::OperationStage {
        ee::OperationStage {
            display_name: s.display_name.clone(),
            description: s.description.clone(),
            complete_work_units: s.complete_work_units,
            total_work_units: s.total_work_units,
        }
    }

    pub fn stage_from(s: ee::OperationStage) -> Stage {
        Stage {
            display_name: s.display_name,
            description: s.description,
            complete_work_units: s.complete_work_units,
            total_work_units: s.total_work_units,
        }
    }

    /// A severity name the message does not know is SEVERITY_UNSPECIFIED.
    pub fn notification(n: &Notification) -> ee::OperationNotification {
        ee::OperationNotification {
            topic: n.topic.clone(),
            detail: n.detail.clone(),
            severity: ee::operation_notification::Severity::from_str_name(&n.severity)
                .unwrap_or_default() as i32,
        }
    }

    /// A severity number the message does not know is SEVERITY_UNSPECIFIED.
    pub fn notification_from(n: ee::OperationNotification) -> Notification {
        Notification {
            topic: n.topic,
            detail: n.detail,
            severity: ee::operation_notification::Severity::try_from(n.severity)
                .unwrap_or_default()
                .as_str_name()
                .to_string(),
        }
    }
}
