//! The task-starting methods (docs/earth-engine.md#task-starting-methods): exports and ingestions
//! become operations of the matching type with the request as payload.

use crate::kit::body;
use crate::kit::error::ApiError;
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
        concurrency_key: None,
        ..Default::default()
    })
}

/// Where a task's output goes, from its request: `(destination URIs, asset to create)`.
///
/// URI forms (the ones Earth Engine reports, with the request's names filled in):
/// - Drive: `https://drive.google.com/#folders/{folder}/{filenamePrefix}` (folder `root`
///   when none is given; the prefix defaults to the description);
/// - Cloud Storage (files and map tiles):
///   `https://console.developers.google.com/storage/browser/{bucket}/{filenamePrefix}`;
/// - an Earth Engine asset (`toAsset` exports, ingestions, feature views):
///   `https://code.earthengine.google.com/?asset={asset name}`;
/// - BigQuery `{project}.{dataset}.{table}`:
///   `https://console.cloud.google.com/bigquery?p={project}&d={dataset}&t={table}&page=table`.
pub fn destinations(
    op_type: &str,
    request: &Value,
    description: &str,
) -> (Vec<String>, Option<NewAsset>) {
    let mut uris = Vec::new();
    let mut asset = None;
    let prefix_or = |d: &Value| -> String {
        d["filenamePrefix"]
            .as_str()
            .filter(|p| !p.is_empty())
            .unwrap_or(description)
            .to_string()
    };
    for options in ["fileExportOptions", "tileExportOptions"] {
        let file = &request[options];
        if let Some(drive) = file.get("driveDestination") {
            let folder = drive["folder"]
                .as_str()
                .filter(|f| !f.is_empty())
                .unwrap_or("root");
            uris.push(format!(
                "https://drive.google.com/#folders/{folder}/{}",
                prefix_or(drive)
            ));
        }
        if let Some(gcs) = file.get("cloudStorageDestination") {
            let bucket = gcs["bucket"].as_str().unwrap_or_default();
            uris.push(format!(
                "https://console.developers.google.com/storage/browser/{bucket}/{}",
                prefix_or(gcs)
            ));
        }
    }
    if let Some(table) = request["bigqueryExportOptions"]["bigqueryDestination"]["table"].as_str() {
        let parts: Vec<&str> = table.splitn(3, '.').collect();
        match parts.as_slice() {
            [p, d, t] => uris.push(format!(
                "https://console.cloud.google.com/bigquery?p={p}&d={d}&t={t}&page=table"
            )),
            _ => uris.push(format!(
                "https://console.cloud.google.com/bigquery?t={table}&page=table"
            )),
        }
    }
    let asset_type = match op_type {
        "EXPORT_IMAGE" | "INGEST_IMAGE" => "IMAGE",
        "EXPORT_CLASSIFIER" => "CLASSIFIER",
        _ => "TABLE",
    };
    let ee_destination = &request["assetExportOptions"]["earthEngineDestination"];
    if let Some(name) = ee_destination["name"].as_str() {
        asset = Some(NewAsset {
            name: name.to_string(),
            asset_type,
            overwrite: ee_destination["overwrite"].as_bool().unwrap_or(false),
            manifest: Value::Null,
        });
    }
    for manifest in ["imageManifest", "tableManifest"] {
        if let Some(name) = request[manifest]["name"].as_str() {
            asset = Some(NewAsset {
                name: name.to_string(),
                asset_type,
                overwrite: request["overwrite"].as_bool().unwrap_or(false),
                manifest: request[manifest].clone(),
            });
        }
    }
    if let Some(name) =
        request["featureViewExportOptions"]["featureViewDestination"]["name"].as_str()
    {
        uris.push(format!("https://code.earthengine.google.com/?asset={name}"));
    }
    if let Some(a) = &asset {
        uris.push(format!(
            "https://code.earthengine.google.com/?asset={}",
            a.name
        ));
    }
    (uris, asset)
}

/// The asset a successful task creates.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAsset {
    pub name: String,
    pub asset_type: &'static str,
    pub overwrite: bool,
    /// An ingestion's manifest (its `properties`, `startTime` and `endTime` are kept).
    pub manifest: Value,
}
