//! `google.protobuf.Any` between its proto3 JSON form (`{"@type": URL, ...fields}`, or
//! `{"@type": URL, "value": ...}` for the well-known types) and its binary form, through the
//! descriptors of a [`Types`]: error details of the google.rpc types, longrun's and Earth
//! Engine's messages and the well-known types, and the messages of the descriptor sets a
//! server is configured with. This is what carries a response or an error detail intact
//! from REST to gRPC and back (issue: proto3 JSON fidelity). A type not described cannot
//! cross from one form to the other, so it is refused ([`Refused::Undescribed`]).

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor};
use prost_types::Any;
use serde_json::Value as Json;
use std::fmt;
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

static BUILTIN: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET).expect("the build's descriptors decode")
});

/// Why a value cannot cross between JSON and binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No message of this type URL is described.
    Undescribed(String),
    /// Not a value of its type (or no `@type`): why.
    Invalid(String),
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Undescribed(url) => write!(f, "the type `{url}` is not described"),
            Refused::Invalid(why) => f.write_str(why),
        }
    }
}

fn invalid(e: impl ToString) -> Refused {
    Refused::Invalid(e.to_string())
}

/// The message types a server can describe: the built-in ones (the google.rpc details, the
/// well-known types, longrun's and Earth Engine's messages) and those of the descriptor
/// sets added. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Types {
    pool: DescriptorPool,
}

impl Default for Types {
    fn default() -> Types {
        Types::builtin()
    }
}

impl Types {
    /// The built-in types only.
    pub fn builtin() -> Types {
        Types {
            pool: BUILTIN.clone(),
        }
    }

    /// The built-in types and the messages of each encoded `google.protobuf.FileDescriptorSet`
    /// (as `protoc --descriptor_set_out` or `buf build` write them; with their imports, or
    /// importing only what is described already). A file of a name already described is
    /// skipped; a set that does not decode, or whose files do not fit together, is an error.
    pub fn with_sets<'a>(sets: impl IntoIterator<Item = &'a [u8]>) -> Result<Types, String> {
        let mut types = Types::builtin();
        for set in sets {
            types.add(set)?;
        }
        Ok(types)
    }

    /// Adds the messages of one encoded `google.protobuf.FileDescriptorSet` (see
    /// [`Types::with_sets`]); on an error nothing is added.
    pub fn add(&mut self, set: &[u8]) -> Result<(), String> {
        let mut pool = self.pool.clone();
        pool.decode_file_descriptor_set(set)
            .map_err(|e| e.to_string())?;
        self.pool = pool;
        Ok(())
    }

    /// How many message types are described.
    pub fn len(&self) -> usize {
        self.pool.all_messages().count()
    }

    /// Never: the built-in types are always described.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether a message of this type URL (`type.googleapis.com/NAME`, or `NAME`) is described.
    pub fn describes(&self, type_url: &str) -> bool {
        self.message(type_url).is_some()
    }

    fn message(&self, type_url: &str) -> Option<MessageDescriptor> {
        self.pool
            .get_message_by_name(type_url.rsplit('/').next().unwrap_or_default())
    }

    fn any_descriptor(&self) -> MessageDescriptor {
        self.pool
            .get_message_by_name("google.protobuf.Any")
            .expect("any.proto is among the build's descriptors")
    }

    /// The binary `Any` of a JSON `Any`. Refused (for a 400): no `@type`, a type not
    /// described, a field the type lacks, a value of the wrong kind.
    pub fn to_any(&self, json: &Json) -> Result<Any, Refused> {
        if is_empty_any(json) {
            return Ok(Any {
                type_url: EMPTY.into(),
                value: Vec::new(),
            });
        }
        if let Some(url) = json.get("@type").and_then(Json::as_str)
            && !self.describes(url)
        {
            return Err(Refused::Undescribed(url.to_string()));
        }
        let message = DynamicMessage::deserialize(self.any_descriptor(), json).map_err(invalid)?;
        Any::decode(message.encode_to_vec().as_slice()).map_err(invalid)
    }

    /// The JSON `Any` of a binary one. Refused (for a 400): a type not described, bytes
    /// that are not a message of that type.
    pub fn from_any(&self, any: &Any) -> Result<Json, Refused> {
        if any.type_url == EMPTY && any.value.is_empty() {
            return Ok(serde_json::json!({"@type": EMPTY}));
        }
        // An Any's content is decoded only when it is serialized: check it first, so that
        // bytes that are not a message of the named type are refused, not mangled.
        let described = self
            .message(&any.type_url)
            .ok_or_else(|| Refused::Undescribed(any.type_url.clone()))?;
        DynamicMessage::decode(described, any.value.as_slice()).map_err(invalid)?;
        let message = DynamicMessage::decode(self.any_descriptor(), any.encode_to_vec().as_slice())
            .map_err(invalid)?;
        serde_json::to_value(&message).map_err(invalid)
    }

    /// An error detail in its canonical JSON form: it must be an `Any` of a described type
    /// (the google.rpc details, among others), with only that type's fields.
    pub fn detail(&self, json: &Json) -> Result<Json, Refused> {
        self.from_any(&self.to_any(json)?)
    }

    /// A worker's response as kept: without `@type`, an object is kept
    /// as a `google.protobuf.Struct` and any other value as a `google.protobuf.Value`; with
    /// `@type` it must be a described type (put in canonical form). Struct and Value carry
    /// numbers as doubles, so an integer a double does not hold exactly is refused rather
    /// than changed on its way through gRPC.
    pub fn response(&self, json: Json) -> Result<Json, Refused> {
        let typed = json.get("@type").is_some();
        let wrapped = match json {
            Json::Object(_) if typed => return self.canonical_response(json),
            object @ Json::Object(_) => serde_json::json!({"@type": STRUCT, "value": object}),
            other => serde_json::json!({"@type": VALUE, "value": other}),
        };
        exact_numbers(&wrapped["value"], "response")?;
        Ok(wrapped)
    }

    fn canonical_response(&self, json: Json) -> Result<Json, Refused> {
        match json["@type"].as_str() {
            // Kept as sent (their numbers as written), once checked.
            Some(STRUCT | VALUE) => {
                self.to_any(&json)?;
                exact_numbers(&json["value"], "response.value")?;
                Ok(json)
            }
            _ => self.from_any(&self.to_any(&json)?),
        }
    }
}

/// Refuses integers beyond ±2^53, which a double (a Struct's number) cannot hold exactly.
fn exact_numbers(json: &Json, path: &str) -> Result<(), Refused> {
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

fn too_big(path: &str, n: &serde_json::Number) -> Refused {
    Refused::Invalid(format!(
        "{path}: the integer {n} is beyond ±2^53, which a google.protobuf.Value (a double) \
         cannot hold exactly; send it as a string"
    ))
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
            let types = Types::builtin();
            assert_eq!(types.detail(&d).unwrap(), d);
            assert_eq!(types.from_any(&types.to_any(&d).unwrap()).unwrap(), d);
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
            assert!(Types::builtin().detail(&bad).is_err(), "{bad}");
        }
        let garbage = Any {
            type_url: "type.googleapis.com/google.rpc.ErrorInfo".into(),
            value: vec![0xff, 0xff],
        };
        let types = Types::builtin();
        assert!(matches!(types.from_any(&garbage), Err(Refused::Invalid(_))));
        assert!(types.response(json!({"n": 9007199254740993u64})).is_err());
        assert!(types.response(json!([-9007199254740993i64])).is_err());
        assert_eq!(
            types.detail(&json!({"@type": "type.googleapis.com/my.Unknown", "x": 1})),
            Err(Refused::Undescribed(
                "type.googleapis.com/my.Unknown".into()
            ))
        );
    }

    #[test]
    fn responses_without_a_type_are_struct_or_value() {
        let types = Types::builtin();
        assert_eq!(
            types.response(json!({"rows": 3})).unwrap(),
            json!({"@type": STRUCT, "value": {"rows": 3}})
        );
        assert_eq!(
            types.response(json!(5)).unwrap(),
            json!({"@type": VALUE, "value": 5})
        );
        let empty = json!({"@type": "type.googleapis.com/google.protobuf.Empty"});
        assert_eq!(types.response(empty.clone()).unwrap(), empty);
    }
}
