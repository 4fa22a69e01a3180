//! A worker's completion as longrun keeps it, whichever encoding brought it: the response
//! and each error detail must be something both REST (proto3 JSON) and gRPC (binary `Any`)
//! can carry intact, and are kept in their canonical JSON form (`longrun_proto::any`).
//! What cannot cross is a 400 naming the field.

use crate::error::ApiError;
use longrun_proto::any;
use longrun_types::operation::Status;
use serde_json::Value as Json;

fn refused(field: String, why: String) -> ApiError {
    ApiError::invalid("INVALID_COMPLETION", format!("{field}: {why}")).with("field", field)
}

/// The response as kept (contract section 8: Struct without `@type`, Value when it is not an
/// object, a described type in canonical form).
pub fn response(json: Json) -> Result<Json, ApiError> {
    any::response(json).map_err(|why| refused("response".into(), why))
}

/// An error with its details in canonical form; each detail needs a described `@type`.
pub fn status(code: i32, message: String, details: Vec<Json>) -> Result<Status, ApiError> {
    let details = details
        .iter()
        .enumerate()
        .map(|(i, d)| any::detail(d).map_err(|why| refused(format!("error.details[{i}]"), why)))
        .collect::<Result<_, _>>()?;
    Ok(Status {
        code,
        message,
        details,
    })
}

/// An error that came over gRPC: its details as JSON, each decoded by its type.
pub fn status_from_grpc(s: longrun_proto::google::rpc::Status) -> Result<Status, ApiError> {
    let details = s
        .details
        .iter()
        .enumerate()
        .map(|(i, d)| any::from_any(d).map_err(|why| refused(format!("error.details[{i}]"), why)))
        .collect::<Result<_, _>>()?;
    Ok(Status {
        code: s.code,
        message: s.message,
        details,
    })
}
