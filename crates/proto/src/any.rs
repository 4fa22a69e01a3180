//! `google.protobuf.Any` between its proto3 JSON form (`{"@type": URL, ...fields}`, or
//! `{"@type": URL, "value": ...}` for the well-known types) and its binary form, through the
//! descriptors of the files here: error details of the google.rpc types, longrun's and Earth
//! Engine's messages and the well-known types. This is what carries a response or an error
//! detail intact from REST to gRPC and back (issue: proto3 JSON fidelity). A type not
//! described here cannot cross from one form to the other, so it is refused.

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use prost_types::Any;
use serde_json::Value as Json;
use std::sync::LazyLock;

/// `type.googleapis.com/google.protobuf.Struct`
pub const STRUCT: &str = "type.googleapis.com/google.protobuf.Struct";
/// `type.googleapis.com/google.protobuf.Value`
pub const VALUE: &str = "type.googleapis.com/google.protobuf.Value";
/// `type.googleapis.com/google.protobuf.Empty`: its JSON `Any` is `{"@type": EMPTY}` (Empty
/// has no special JSON form, so no `value`), which prost-reflect does not read or write that
/// way; handled here.
pub const EMPTY: &str = "type.googleapis.com/google.protobuf.Empty";

fn is_empty_any(json: &Json) -> bool {
    json["@type"] == EMPTY && json.as_object().is_some_and(|o| o.len() == 1)
}

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET).expect("the build's descriptors decode")
});

fn any_descriptor() -> MessageDescriptor {
    POOL.get_message_by_name("google.protobuf.Any")
        .expect("any.proto is among the build's descriptors")
}

/// The binary `Any` of a JSON `Any`. Errors (for a 400): no `@type`, a type not described
/// here, a field the type lacks, a value of the wrong kind.
pub fn to_any(json: &Json) -> Result<Any, String> {
    if is_empty_any(json) {
        return Ok(Any {
            type_url: EMPTY.into(),
            value: Vec::new(),
        });
    }
    let message = DynamicMessage::deserialize(any_descriptor(), json).map_err(|e| e.to_string())?;
    Any::decode(message.encode_to_vec().as_slice()).map_err(|e| e.to_string())
}

/// The JSON `Any` of a binary one. Errors (for a 400): a type not described here, bytes
/// that are not a message of that type.
pub fn from_any(any: &Any) -> Result<Json, String> {
    if any.type_url == EMPTY && any.value.is_empty() {
        return Ok(serde_json::json!({"@type": EMPTY}));
    }
    let message = DynamicMessage::decode(any_descriptor(), any.encode_to_vec().as_slice())
        .map_err(|e| e.to_string())?;
    // An Any's content is decoded only when it is serialized: check it first, so that
    // bytes that are not a message of the named type are refused, not mangled.
    let described = POOL
        .get_message_by_name(any.type_url.rsplit('/').next().unwrap_or_default())
        .ok_or_else(|| format!("unknown type `{}`", any.type_url))?;
    DynamicMessage::decode(described, any.value.as_slice()).map_err(|e| e.to_string())?;
    serde_json::to_value(&message).map_err(|e| e.to_string())
}

/// An error detail in its canonical JSON form: it must be an `Any` of a type described here
/// (the google.rpc details, among others), with only that type's fields.
pub fn detail(json: &Json) -> Result<Json, String> {
    from_any(&to_any(json)?)
}

/// A worker's response as kept (contract section 8): without `@type`, an object is kept as
/// a `google.protobuf.Struct` and any other value as a `google.protobuf.Value`; with
/// `@type` it must be a type described here (put in canonical form). Struct and Value carry
/// numbers as doubles, so an integer a double does not hold exactly is refused rather than
/// changed on its way through gRPC.
pub fn response(json: Json) -> Result<Json, String> {
    let typed = json.get("@type").is_some();
    let wrapped = match json {
        Json::Object(_) if typed => return canonical_response(json),
        object @ Json::Object(_) => serde_json::json!({"@type": STRUCT, "value": object}),
        other => serde_json::json!({"@type": VALUE, "value": other}),
    };
    exact_numbers(&wrapped["value"], "response")?;
    Ok(wrapped)
}

fn canonical_response(json: Json) -> Result<Json, String> {
    match json["@type"].as_str() {
        // Kept as sent (their numbers as written), once checked.
        Some(STRUCT | VALUE) => {
            to_any(&json)?;
            exact_numbers(&json["value"], "response.value")?;
            Ok(json)
        }
        _ => from_any(&to_any(&json)?),
    }
}

/// Refuses integers beyond ±2^53, which a double (a Struct's number) cannot hold exactly.
fn exact_numbers(json: &Json, path: &str) -> Result<(), String> {
    const EXACT: u64 = 1 << 53;
    match json {
        Json::Number(n) if n.as_u64().is_some_and(|u| u > EXACT) => Err(too_big(path, n)),
        Json::Number(n) if n.as_i64().is_some_and(|i| i.unsigned_abs() > EXACT) => {
            Err(too_big(path, n))
        }
        Json::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| exact_numbers(v, &format!("{path}[{i}]"))),
        Json::Object(fields) => fields
            .iter()
            .try_for_each(|(k, v)| exact_numbers(v, &format!("{path}.{k}"))),
        _ => Ok(()),
    }
}

fn too_big(path: &str, n: &serde_json::Number) -> String {
    format!(
        "{path}: the integer {n} is beyond ±2^53, which a google.protobuf.Value (a double) \
         cannot hold exactly; send it as a string"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn google_rpc_details_cross_both_ways_intact() {
        let details = [
            json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "R", "domain": "d", "metadata": {"k": "v"}}),
            json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.500s"}),
            json!({"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"subject": "s", "quotaValue": "9007199254740993", "quotaDimensions": {"region": "x"}}]}),
            json!({"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": [{"field": "a.b", "description": "bad", "localizedMessage": {"locale": "fr", "message": "mauvais"}}]}),
            json!({"@type": "type.googleapis.com/google.rpc.Help", "links": [{"description": "docs", "url": "https://x"}]}),
        ];
        for d in details {
            assert_eq!(detail(&d).unwrap(), d);
            assert_eq!(from_any(&to_any(&d).unwrap()).unwrap(), d);
        }
    }

    #[test]
    fn what_cannot_cross_is_refused() {
        for bad in [
            json!({"reason": "no type"}),
            json!({"@type": "type.googleapis.com/my.Unknown", "x": 1}),
            json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "nope": 1}),
            json!({"@type": "type.googleapis.com/google.rpc.ErrorInfo", "metadata": {"k": 1}}),
        ] {
            assert!(detail(&bad).is_err(), "{bad}");
        }
        let garbage = Any {
            type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
            value: vec![0xff, 0xff],
        };
        assert!(from_any(&garbage).is_err());
        assert!(response(json!({"n": 9007199254740993u64})).is_err());
        assert!(response(json!([-9007199254740993i64])).is_err());
    }

    #[test]
    fn responses_without_a_type_are_struct_or_value() {
        assert_eq!(
            response(json!({"rows": 3})).unwrap(),
            json!({"@type": STRUCT, "value": {"rows": 3}})
        );
        assert_eq!(
            response(json!(5)).unwrap(),
            json!({"@type": VALUE, "value": 5})
        );
        let empty = json!({"@type": "type.googleapis.com/google.protobuf.Empty"});
        assert_eq!(response(empty.clone()).unwrap(), empty);
    }
}
