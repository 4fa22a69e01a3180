//! A worker's completion as longrun keeps it, whichever encoding brought it: the response
//! and each error detail must be something both REST (proto3 JSON) and gRPC (binary `Any`)
//! can carry intact, and are kept in their canonical JSON form (`longrun_proto::any`). The
//! types that can be described are the built-in ones and those of `[api] descriptor_sets`
//! ([`types`]). What cannot cross is a 400 naming the field; a type not described also
//! names the type and the setting that would describe it.

use crate::kit::error::ApiError;
use longrun_proto::any::{Refused, Types};
use longrun_types::operation::Status;
use serde_json::Value as Json;

/// The setting that describes more types, as the config file spells it.
pub const SETTING: &str = "[api] descriptor_sets";

/// The types a response or an error detail may be: the built-in ones and the messages of
/// each descriptor set named (`[api] descriptor_sets`), read now. A file that cannot be read, is not a
/// descriptor set, or does not fit with the others is an error naming it (the server does
/// not start).
pub fn types(descriptor_sets: &[std::path::PathBuf]) -> anyhow::Result<Types> {
    let mut types = Types::builtin();
    for path in descriptor_sets {
        let bytes = std::fs::read(path).map_err(|e| {
            anyhow::anyhow!("api.descriptor_sets: cannot read {}: {e}", path.display())
        })?;
        types.add(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "api.descriptor_sets: {} is not a usable google.protobuf.FileDescriptorSet: {e}",
                path.display()
            )
        })?;
    }
    if !descriptor_sets.is_empty() {
        tracing::info!(
            sets = descriptor_sets.len(),
            messages = types.len(),
            "responses may be any message described, descriptor sets included"
        );
    }
    Ok(types)
}

fn refused(field: String, why: Refused) -> ApiError {
    match why {
        Refused::Undescribed(url) => {
            let name = url.rsplit('/').next().unwrap_or_default().to_string();
            ApiError::invalid(
                "UNDESCRIBED_TYPE",
                format!(
                    "{field}: the type {name} (`{url}`) is not described: name a descriptor \
                     set holding it in {SETTING} (files of google.protobuf.FileDescriptorSet, \
                     as `protoc --descriptor_set_out` or `buf build` write them)"
                ),
            )
            .with("field", field)
            .with("type", url)
            .with("setting", SETTING)
        }
        Refused::Invalid(why) => {
            ApiError::invalid("INVALID_COMPLETION", format!("{field}: {why}")).with("field", field)
        }
    }
}

/// The response as kept (a Struct without `@type`, a Value when it is not an
/// object, a described type in canonical form).
pub fn response(types: &Types, json: Json) -> Result<Json, ApiError> {
    types
        .response(json)
        .map_err(|why| refused("response".into(), why))
}

/// An error with its details in canonical form; each detail needs a described `@type`.
pub fn status(
    types: &Types,
    code: i32,
    message: String,
    details: Vec<Json>,
) -> Result<Status, ApiError> {
    let details = details
        .iter()
        .enumerate()
        .map(|(i, d)| {
            types
                .detail(d)
                .map_err(|why| refused(format!("error.details[{i}]"), why))
        })
        .collect::<Result<_, _>>()?;
    Ok(Status {
        code,
        message,
        details,
    })
}

/// An error that came over gRPC: its details as JSON, each decoded by its type.
pub fn status_from_grpc(
    types: &Types,
    s: longrun_proto::google::rpc::Status,
) -> Result<Status, ApiError> {
    let details = s
        .details
        .iter()
        .enumerate()
        .map(|(i, d)| {
            types
                .from_any(d)
                .map_err(|why| refused(format!("error.details[{i}]"), why))
        })
        .collect::<Result<_, _>>()?;
    Ok(Status {
        code: s.code,
        message: s.message,
        details,
    })
}
