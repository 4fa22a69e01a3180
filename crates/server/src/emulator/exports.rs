//! The task-starting methods (contract section 7): exports and ingestions become operations
//! of the matching type with the request as payload.

use crate::error::ApiError;
use crate::rest::body;
use longrun_engine::Submission;
use serde_json::Value;

/// `{resource}:{verb}` under a project, and the operation type it starts.
const STARTS: &[(&str, &str)] = &[
    ("image:export", "EXPORT_IMAGE"),
    ("table:export", "EXPORT_FEATURES"),
    ("video:export", "EXPORT_VIDEO"),
    ("map:export", "EXPORT_TILES"),
    ("videoMap:export", "EXPORT_VIDEO_MAP"),
    ("classifier:export", "EXPORT_CLASSIFIER"),
    ("image:import", "INGEST_IMAGE"),
    ("table:import", "INGEST_TABLE"),
];

/// The discovery id (without `earthengine.projects.`) of the method starting `op_type`.
pub fn method_id(op_type: &str) -> &'static str {
    match op_type {
        "EXPORT_IMAGE" => "image.export",
        "EXPORT_FEATURES" => "table.export",
        "EXPORT_VIDEO" => "video.export",
        "EXPORT_TILES" => "map.export",
        "EXPORT_VIDEO_MAP" => "videoMap.export",
        "EXPORT_CLASSIFIER" => "classifier.export",
        "INGEST_IMAGE" => "image.import",
        _ => "table.import",
    }
}

/// The operation type a task-starting path (after `projects/P/`) creates.
pub fn start_type(path: &str) -> Option<&'static str> {
    STARTS.iter().find(|(p, _)| *p == path).map(|(_, t)| *t)
}

/// An export or ingestion request as a submission: the whole body is the payload; its
/// `requestId`, `description` and `priority` are read.
pub fn submission(op_type: &str, bytes: &[u8]) -> Result<Submission, ApiError> {
    let request: Value = body::json(bytes)?;
    let Value::Object(fields) = &request else {
        return Err(ApiError::invalid(
            "INVALID_REQUEST_BODY",
            "the request body must be a JSON object",
        ));
    };
    let text = |key: &'static str| -> Result<Option<String>, ApiError> {
        match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::invalid(
                "INVALID_ARGUMENT",
                format!("{key} must be a string"),
            )
            .with("field", key)),
        }
    };
    // The client wraps it (`{"value": 100}`, an Int32Value); a bare number is taken too.
    let priority = match fields.get("priority") {
        None | Some(Value::Null) => None,
        Some(p) => Some(p.get("value").unwrap_or(p).as_i64().ok_or_else(|| {
            ApiError::invalid(
                "INVALID_ARGUMENT",
                "priority must be an integer or {\"value\": integer}",
            )
            .with("field", "priority")
        })?),
    };
    // Ingestions name their asset rather than describing themselves.
    let description = match text("description")? {
        Some(d) => d,
        None => ["imageManifest", "tableManifest"]
            .iter()
            .find_map(|m| request[m]["name"].as_str())
            .map(|asset| format!("Ingest {asset}"))
            .unwrap_or_default(),
    };
    Ok(Submission {
        op_type: op_type.to_string(),
        description,
        priority,
        request_id: text("requestId")?,
        operation_id: None,
        payload: Some(request.clone()),
        script_uri: String::new(),
        destination_uris: Vec::new(),
        max_attempts: None,
        timeout: None,
    })
}
