//! The discovery document (`GET /$discovery/rest?version=v1`), which Google's API clients
//! (the Earth Engine Python client among them) fetch at start and build their request paths
//! from. It is generated from `METHODS`, the table of what the router serves; a test routes
//! every entry's example path, so the document cannot describe a method the server lacks.

use crate::kit::method::Method;
use crate::kit::render::Version;
use serde_json::{Map, Value, json};

const PROJECT: &str = "^projects/[^/]+$";
const OPERATION: &str = "^projects/[^/]+/operations/.+$";
const ACCOUNT: &str = "^projects/[^/]+/serviceAccounts/[^/]+$";

/// Every method the REST router serves under a version prefix.
pub const METHODS: &[Method] = &[
    Method {
        resource: &["projects", "operations"],
        name: "get",
        http: "GET",
        path: "{+name}",
        param: ("name", OPERATION),
        query: &[],
        request: None,
        response: "Operation",
        description: "Gets the latest state of a long-running operation.",
        example: "projects/p/operations/a/b",
    },
    Method {
        resource: &["projects", "operations"],
        name: "list",
        http: "GET",
        path: "{+name}/operations",
        param: ("name", PROJECT),
        query: &[
            ("filter", "string", None),
            ("pageSize", "integer", Some("int32")),
            ("pageToken", "string", None),
            ("returnPartialSuccess", "boolean", None),
        ],
        request: None,
        response: "ListOperationsResponse",
        description: "Lists operations that match the filter, newest first.",
        example: "projects/p/operations",
    },
    Method {
        resource: &["projects", "operations"],
        name: "cancel",
        http: "POST",
        path: "{+name}:cancel",
        param: ("name", OPERATION),
        query: &[],
        request: Some("CancelOperationRequest"),
        response: "Empty",
        description: "Starts asynchronous cancellation of a long-running operation.",
        example: "projects/p/operations/a:cancel",
    },
    Method {
        resource: &["projects", "operations"],
        name: "delete",
        http: "DELETE",
        path: "{+name}",
        param: ("name", OPERATION),
        query: &[],
        request: None,
        response: "Empty",
        description: "Deletes a done long-running operation.",
        example: "projects/p/operations/a",
    },
    Method {
        resource: &["projects", "operations"],
        name: "wait",
        http: "POST",
        path: "{+name}:wait",
        param: ("name", OPERATION),
        query: &[],
        request: Some("WaitOperationRequest"),
        response: "Operation",
        description: "Waits until the operation is done or the timeout elapses.",
        example: "projects/p/operations/a:wait",
    },
    Method {
        resource: &["projects", "operations"],
        name: "submit",
        http: "POST",
        path: "{+parent}/operations:submit",
        param: ("parent", PROJECT),
        query: &[],
        request: Some("SubmitOperationRequest"),
        response: "Operation",
        description: "Starts an operation of any type (a longrun extension).",
        example: "projects/p/operations:submit",
    },
    Method {
        resource: &["projects", "operations"],
        name: "retry",
        http: "POST",
        path: "{+name}:retry",
        param: ("name", OPERATION),
        query: &[],
        request: Some("RetryOperationRequest"),
        response: "Operation",
        description: "Runs a done operation again as a new one (a longrun extension).",
        example: "projects/p/operations/a:retry",
    },
    Method {
        resource: &["projects", "operations"],
        name: "batchSubmit",
        http: "POST",
        path: "{+parent}/operations:batchSubmit",
        param: ("parent", PROJECT),
        query: &[],
        request: Some("BatchSubmitOperationsRequest"),
        response: "BatchSubmitOperationsResponse",
        description: "Starts up to 1,000 operations in one durable write, all or none (a longrun extension).",
        example: "projects/p/operations:batchSubmit",
    },
    Method {
        resource: &["projects", "operations"],
        name: "batchCancel",
        http: "POST",
        path: "{+parent}/operations:batchCancel",
        param: ("parent", PROJECT),
        query: &[],
        request: Some("BatchCancelOperationsRequest"),
        response: "Operation",
        description: "Cancels every operation not yet done that matches a filter, as one BATCH_CANCEL operation (a longrun extension).",
        example: "projects/p/operations:batchCancel",
    },
    Method {
        resource: &["projects", "operations"],
        name: "batchRetry",
        http: "POST",
        path: "{+parent}/operations:batchRetry",
        param: ("parent", PROJECT),
        query: &[],
        request: Some("BatchRetryOperationsRequest"),
        response: "Operation",
        description: "Retries every done operation that matches a filter, as one BATCH_RETRY operation (a longrun extension).",
        example: "projects/p/operations:batchRetry",
    },
    Method {
        resource: &["projects", "operations"],
        name: "heartbeat",
        http: "POST",
        path: "{+name}:heartbeat",
        param: ("name", OPERATION),
        query: &[],
        request: Some("HeartbeatRequest"),
        response: "HeartbeatResponse",
        description: "A worker extends its lease, reports progress and hears of cancellation.",
        example: "projects/p/operations/a:heartbeat",
    },
    Method {
        resource: &["projects", "operations"],
        name: "complete",
        http: "POST",
        path: "{+name}:complete",
        param: ("name", OPERATION),
        query: &[],
        request: Some("CompleteRequest"),
        response: "Operation",
        description: "A worker reports the outcome of an operation it leased.",
        example: "projects/p/operations/a:complete",
    },
    Method {
        resource: &["projects", "operations"],
        name: "release",
        http: "POST",
        path: "{+name}:release",
        param: ("name", OPERATION),
        query: &[],
        request: Some("ReleaseRequest"),
        response: "Operation",
        description: "A worker that stops hands a leased operation back: PENDING again, without spending an attempt.",
        example: "projects/p/operations/a:release",
    },
    Method {
        resource: &["workers"],
        name: "lease",
        http: "POST",
        path: "{+name}:lease",
        param: ("name", "^workers/[^/]+$"),
        query: &[],
        request: Some("LeaseRequest"),
        response: "LeaseResponse",
        description: "A worker leases operations of the types it serves.",
        example: "workers/w:lease",
    },
    Method {
        resource: &["operationPayloads"],
        name: "get",
        http: "GET",
        path: "operationPayloads/{+name}",
        param: ("name", OPERATION),
        query: &[],
        request: None,
        response: "OperationPayload",
        description: "What the operation was submitted with: its payload (never in list or get answers).",
        example: "operationPayloads/projects/p/operations/a",
    },
    Method {
        resource: &["operationOutputs"],
        name: "get",
        http: "GET",
        path: "operationOutputs/{+name}",
        param: ("name", OPERATION),
        query: &[],
        request: None,
        response: "OperationOutput",
        description: "What a command operation printed.",
        example: "operationOutputs/projects/p/operations/a",
    },
    Method {
        resource: &["projects", "serviceAccounts"],
        name: "list",
        http: "GET",
        path: "{+parent}/serviceAccounts",
        param: ("parent", PROJECT),
        query: &[],
        request: None,
        response: "ListServiceAccountsResponse",
        description: "Lists the project's service accounts.",
        example: "projects/p/serviceAccounts",
    },
    Method {
        resource: &["projects", "serviceAccounts"],
        name: "create",
        http: "POST",
        path: "{+parent}/serviceAccounts",
        param: ("parent", PROJECT),
        query: &[],
        request: Some("CreateServiceAccountRequest"),
        response: "ServiceAccount",
        description: "Registers a service account and the public half of its key.",
        example: "projects/p/serviceAccounts",
    },
    Method {
        resource: &["projects", "serviceAccounts"],
        name: "disable",
        http: "POST",
        path: "{+name}:disable",
        param: ("name", ACCOUNT),
        query: &[],
        request: Some("Empty"),
        response: "ServiceAccount",
        description: "Stops an account getting tokens; the tokens it holds stop working.",
        example: "projects/p/serviceAccounts/someone@p.iam.longrun:disable",
    },
    Method {
        resource: &["projects", "serviceAccounts"],
        name: "enable",
        http: "POST",
        path: "{+name}:enable",
        param: ("name", ACCOUNT),
        query: &[],
        request: Some("Empty"),
        response: "ServiceAccount",
        description: "Lets a disabled account get tokens again.",
        example: "projects/p/serviceAccounts/someone@p.iam.longrun:enable",
    },
    Method {
        resource: &["projects", "serviceAccounts"],
        name: "delete",
        http: "DELETE",
        path: "{+name}",
        param: ("name", ACCOUNT),
        query: &[],
        request: None,
        response: "Empty",
        description: "Removes an account; its tokens stop working.",
        example: "projects/p/serviceAccounts/someone@p.iam.longrun",
    },
];

const SCOPES: [&str; 2] = [
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/earthengine",
];

impl Method {
    /// The same method answering a `ListAssetsResponse`, whose `nextPageToken` makes the
    /// client generate its `listAssets_next`.
    pub const fn listing(self) -> Method {
        Method {
            response: "ListAssetsResponse",
            ..self
        }
    }
}

/// The flat path discovery also lists: each `{+param}` spelled out segment by segment.
pub(crate) fn flat_path(method: &Method) -> String {
    let param = format!("{{+{}}}", method.param.0);
    method
        .path
        .replace(&param, &name_segments(method).join("/"))
}

/// The `{collectionId}` parameters of the flat path, in order: `projectsId`, `operationsId`.
pub(crate) fn flat_params(method: &Method) -> Vec<String> {
    name_segments(method)
        .iter()
        .filter_map(|s| Some(s.split_once("/{")?.1.trim_end_matches('}').to_string()))
        .collect()
}

/// The resource name's pattern as segments: `projects/{projectsId}`, `operations`, ….
fn name_segments(method: &Method) -> Vec<String> {
    let pattern = method
        .param
        .1
        .trim_start_matches('^')
        .trim_end_matches('$')
        .replace("[^/]+", "*")
        .replace(".+", "*");
    pattern
        .split('/')
        .collect::<Vec<_>>()
        .chunks(2)
        .map(|pair| match pair {
            [collection, _] => format!("{collection}/{{{collection}Id}}"),
            [single] => single.to_string(),
            _ => unreachable!("chunks of two"),
        })
        .collect()
}

/// The simple `{name}` path parameters of a path template (not the `{+name}` one).
pub fn segment_params(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .filter(|s| !s.starts_with('+'))
}

fn method_json(version: Version, method: &Method) -> Value {
    let mut parameters = Map::new();
    if !method.param.0.is_empty() {
        parameters.insert(
            method.param.0.into(),
            json!({
                "location": "path", "type": "string", "required": true, "pattern": method.param.1,
                "description": "The resource name.",
            }),
        );
    }
    // `{name}` segments after the resource (a map tile's `{zoom}/{x}/{y}`).
    let segments: Vec<&str> = segment_params(method.path).collect();
    for name in &segments {
        parameters.insert(
            (*name).into(),
            json!({"location": "path", "type": "integer", "format": "int32", "required": true}),
        );
    }
    for (name, kind, format) in method.query {
        let mut p = json!({"location": "query", "type": kind});
        if let Some(format) = format {
            p["format"] = json!(format);
        }
        parameters.insert((*name).into(), p);
    }
    let v = version.as_str();
    let mut m = json!({
        "id": format!("earthengine.{}.{}", method.resource.join("."), method.name),
        "httpMethod": method.http,
        "path": format!("{v}/{}", method.path),
        "flatPath": format!("{v}/{}", flat_path(method)),
        "parameters": parameters,
        "parameterOrder": std::iter::once(method.param.0).filter(|p| !p.is_empty()).chain(segments.iter().copied()).collect::<Vec<_>>(),
        "response": {"$ref": method.response},
        "scopes": SCOPES,
        "description": method.description,
    });
    if let Some(request) = method.request {
        m["request"] = json!({"$ref": request});
    }
    m
}

/// Puts a method under its resource, making the resources on the way.
fn insert(node: &mut Map<String, Value>, resource: &[&str], name: &str, method: Value) {
    let (first, rest) = resource.split_first().expect("every method has a resource");
    let entry = node.entry(first.to_string()).or_insert_with(|| json!({}));
    let key = if rest.is_empty() {
        "methods"
    } else {
        "resources"
    };
    let children = &mut entry[key];
    if children.is_null() {
        *children = json!({});
    }
    let children = children.as_object_mut().expect("resources are objects");
    if rest.is_empty() {
        children.insert(name.to_string(), method);
    } else {
        insert(children, rest, name, method);
    }
}

/// Every method the discovery document lists: the router's own, then the Earth Engine
/// emulator's (tasks, assets, and the methods it answers `NOT_EMULATED`).
pub fn all() -> impl Iterator<Item = &'static Method> {
    METHODS
        .iter()
        .chain(crate::emulator::methods::TASKS)
        .chain(crate::emulator::methods::ASSETS)
        .chain(crate::emulator::methods::NOT_EMULATED)
        .chain(crate::projects::METHODS)
        .chain(crate::schedules::METHODS)
        .chain(crate::queues::METHODS)
}

/// The document for `version`, with `root` (`http://host/`) as its root URL.
pub fn document(version: Version, root: &str) -> Value {
    let mut resources = Map::new();
    for method in all() {
        insert(
            &mut resources,
            method.resource,
            method.name,
            method_json(version, method),
        );
    }
    let string = |description: &str| json!({"type": "string", "location": "query", "description": description});
    json!({
        "kind": "discovery#restDescription",
        "discoveryVersion": "v1",
        "id": format!("earthengine:{}", version.as_str()),
        "name": "earthengine",
        "version": version.as_str(),
        "title": "Google Earth Engine API (longrun)",
        "description": "Long-running operations of the Earth Engine API, served by longrun.",
        "protocol": "rest",
        "rootUrl": root,
        "baseUrl": root,
        "basePath": "",
        "servicePath": "",
        "batchPath": "batch",
        "ownerDomain": "google.com",
        "ownerName": "Google",
        "auth": {"oauth2": {"scopes": {
            SCOPES[0]: {"description": "See, edit, configure, and delete your Google Cloud data."},
            SCOPES[1]: {"description": "View and manage your Google Earth Engine data."},
        }}},
        "parameters": {
            "$.xgafv": {"type": "string", "location": "query", "enum": ["1", "2"], "description": "V1 error format."},
            "access_token": string("OAuth access token."),
            "alt": {"type": "string", "location": "query", "default": "json", "enum": ["json", "media", "proto"], "description": "Data format for response."},
            "callback": string("JSONP"),
            "fields": string("Selector specifying which fields to include in a partial response."),
            "key": string("API key."),
            "oauth_token": string("OAuth 2.0 token for the current user."),
            "prettyPrint": {"type": "boolean", "location": "query", "default": "true", "description": "Returns response with indentations and line breaks."},
            "quotaUser": string("Available to use for quota purposes for server-side applications."),
            "uploadType": string("Legacy upload protocol for media (e.g. \"media\", \"multipart\")."),
            "upload_protocol": string("Upload protocol for media (e.g. \"raw\", \"multipart\")."),
        },
        "resources": resources,
        "schemas": schemas(),
    })
}

/// An object schema with the given properties.
fn object(id: &str, properties: Value) -> Value {
    json!({"id": id, "type": "object", "properties": properties})
}

/// A task-starting request: any fields the client sends are kept as the payload; these are
/// the ones longrun reads.
fn start_request(id: &str) -> Value {
    let mut schema = object(
        id,
        json!({
            "requestId": {"type": "string", "description": "Retries with the same id start one operation."},
            "description": {"type": "string"},
            "priority": {"type": "integer", "format": "int32"},
        }),
    );
    schema["additionalProperties"] = json!({"type": "any"});
    schema
}

pub(crate) fn schemas() -> Value {
    let s = |t: &str| json!({"type": t});
    let r = |id: &str| json!({"$ref": id});
    let array = |items: Value| json!({"type": "array", "items": items});
    let any_object = json!({"type": "object", "additionalProperties": {"type": "any"}});
    let mut schemas = json!({
        "Empty": object("Empty", json!({})),
        "Status": object("Status", json!({
            "code": {"type": "integer", "format": "int32"},
            "message": s("string"),
            "details": array(any_object.clone()),
        })),
        "Operation": object("Operation", json!({
            "name": s("string"),
            "metadata": any_object,
            "done": s("boolean"),
            "error": r("Status"),
            "response": any_object,
        })),
        "OperationStage": object("OperationStage", json!({
            "displayName": s("string"), "description": s("string"),
            "completeWorkUnits": {"type": "string", "format": "int64"},
            "totalWorkUnits": {"type": "string", "format": "int64"},
        })),
        "OperationNotification": object("OperationNotification", json!({
            "topic": s("string"), "detail": s("string"),
            "severity": {"type": "string", "enum": ["SEVERITY_UNSPECIFIED", "WARNING", "SEVERE"]},
        })),
        "OperationMetadata": object("OperationMetadata", json!({
            "state": {"type": "string", "enum": ["STATE_UNSPECIFIED", "PENDING", "RUNNING", "CANCELLING", "SUCCEEDED", "CANCELLED", "FAILED"]},
            "description": s("string"), "type": s("string"),
            "priority": {"type": "integer", "format": "int32"},
            "createTime": {"type": "string", "format": "google-datetime"},
            "updateTime": {"type": "string", "format": "google-datetime"},
            "startTime": {"type": "string", "format": "google-datetime"},
            "endTime": {"type": "string", "format": "google-datetime"},
            "progress": {"type": "number", "format": "double"},
            "stages": array(r("OperationStage")),
            "attempt": {"type": "integer", "format": "int32"},
            "scriptUri": s("string"),
            "destinationUris": array(s("string")),
            "notifications": array(r("OperationNotification")),
            "batchEecuUsageSeconds": {"type": "number", "format": "double"},
            "concurrencyKey": s("string"),
            "retryOf": s("string"),
            "scheduleTime": {"type": "string", "format": "google-datetime"},
            "startTimeout": {"type": "string", "format": "google-duration"},
            "waitingReason": s("string"),
        })),
        "ListOperationsResponse": object("ListOperationsResponse", json!({
            "operations": array(r("Operation")),
            "nextPageToken": s("string"),
        })),
        "CancelOperationRequest": object("CancelOperationRequest", json!({})),
        "WaitOperationRequest": object("WaitOperationRequest", json!({
            "timeout": {"type": "string", "format": "google-duration"},
        })),
        "SubmitOperationRequest": object("SubmitOperationRequest", json!({
            "type": s("string"), "description": s("string"),
            "priority": {"type": "integer", "format": "int32"},
            "requestId": s("string"), "operationId": s("string"),
            "payload": {"type": "any"}, "scriptUri": s("string"),
            "destinationUris": array(s("string")),
            "maxAttempts": {"type": "integer", "format": "int32"},
            "timeout": {"type": "string", "format": "google-duration"},
            "concurrencyKey": s("string"),
            "scheduleTime": {"type": "string", "format": "google-datetime"},
            "startTimeout": {"type": "string", "format": "google-duration"},
        })),
        "RetryOperationRequest": object("RetryOperationRequest", json!({
            "operationId": s("string"), "requestId": s("string"),
        })),
        "BatchCancelOperationsRequest": object("BatchCancelOperationsRequest", json!({
            "filter": s("string"),
        })),
        "BatchRetryOperationsRequest": object("BatchRetryOperationsRequest", json!({
            "filter": s("string"),
        })),

        "BatchSubmitOperationsRequest": object("BatchSubmitOperationsRequest", json!({
            "requests": array(r("SubmitOperationRequest")),
        })),
        "BatchSubmitOperationsResponse": object("BatchSubmitOperationsResponse", json!({
            "operations": array(r("Operation")),
        })),
        "LeaseRequest": object("LeaseRequest", json!({
            "types": array(s("string")),
            "maxOperations": {"type": "integer", "format": "int32"},
            "waitTimeout": {"type": "string", "format": "google-duration"},
            "leaseDuration": {"type": "string", "format": "google-duration"},
        })),
        "Lease": object("Lease", json!({
            "operation": r("Operation"), "leaseId": s("string"),
            "leaseExpireTime": {"type": "string", "format": "google-datetime"},
            "payload": {"type": "any"},
        })),
        "LeaseResponse": object("LeaseResponse", json!({"leases": array(r("Lease"))})),
        "HeartbeatRequest": object("HeartbeatRequest", json!({
            "leaseId": s("string"),
            "progress": {"type": "number", "format": "double"},
            "stages": array(r("OperationStage")),
            "batchEecuUsageSeconds": {"type": "number", "format": "double"},
            "notifications": array(r("OperationNotification")),
            "destinationUris": array(s("string")),
            "waitForCancel": {"type": "string", "format": "google-duration"},
        })),
        "HeartbeatResponse": object("HeartbeatResponse", json!({
            "cancelRequested": s("boolean"),
            "leaseExpireTime": {"type": "string", "format": "google-datetime"},
        })),
        "CompleteRequest": object("CompleteRequest", json!({
            "leaseId": s("string"), "response": {"type": "any"}, "error": r("Status"),
        })),
        "ReleaseRequest": object("ReleaseRequest", json!({"leaseId": s("string")})),
        "OperationOutput": object("OperationOutput", json!({"name": s("string"), "output": s("string")})),
        "OperationPayload": object("OperationPayload", json!({"name": s("string"), "payload": {"type": "any"}})),
        "AlgorithmArgument": object("AlgorithmArgument", json!({
            "argumentName": s("string"), "type": s("string"), "description": s("string"),
            "optional": s("boolean"), "defaultValue": {"type": "any"},
        })),
        "Algorithm": object("Algorithm", json!({
            "name": s("string"), "description": s("string"), "returnType": s("string"),
            "arguments": array(r("AlgorithmArgument")), "hidden": s("boolean"),
        })),
        "ListAlgorithmsResponse": object("ListAlgorithmsResponse", json!({"algorithms": array(r("Algorithm"))})),
        "ServiceAccount": object("ServiceAccount", json!({
            "name": s("string"), "email": s("string"), "projectId": s("string"),
            "keyId": s("string"), "disabled": s("boolean"),
            "createTime": {"type": "string", "format": "google-datetime"},
        })),
        "EarthEngineAsset": object("EarthEngineAsset", json!({
            "type": s("string"), "name": s("string"), "id": s("string"),
            "updateTime": {"type": "string", "format": "google-datetime"},
            "startTime": {"type": "string", "format": "google-datetime"},
            "endTime": {"type": "string", "format": "google-datetime"},
            "properties": {"type": "object", "additionalProperties": {"type": "any"}},
        })),
        "ListAssetsResponse": object("ListAssetsResponse", json!({
            "assets": array(r("EarthEngineAsset")), "nextPageToken": s("string"),
        })),
        "Any": {"id": "Any", "type": "object", "additionalProperties": {"type": "any"}},
        "ListServiceAccountsResponse": object("ListServiceAccountsResponse", json!({"accounts": array(r("ServiceAccount"))})),
        "CreateServiceAccountRequest": object("CreateServiceAccountRequest", json!({
            "accountId": s("string"), "keyId": s("string"), "publicKeyPem": s("string"),
        })),
    });
    for id in [
        "ExportImageRequest",
        "ExportTableRequest",
        "ExportVideoRequest",
        "ExportMapRequest",
        "ExportVideoMapRequest",
        "ExportClassifierRequest",
        "ImportImageRequest",
        "ImportTableRequest",
    ] {
        schemas[id] = start_request(id);
    }
    // Apart from the literal above, which is as large as `json!` expands: the project
    // registry's (docs/projects.md#registry), and more of EarthEngineAsset.
    schemas["ProjectRegistration"] = object(
        "ProjectRegistration",
        json!({
            "project": s("string"),
            "plan": {"type": "string", "enum": ["commercial", "noncommercial"]},
            "registeredOn": {"type": "string", "description": "YYYY-MM-DD"},
            "eligibility": {"type": "string", "enum": ["verified", "unverified"]},
        }),
    );
    // An int64 as a JSON string, as Google writes it (the size its task recorded).
    schemas["EarthEngineAsset"]["properties"]["sizeBytes"] =
        json!({"type": "string", "format": "int64"});
    schemas["ListProjectRegistrationsResponse"] = object(
        "ListProjectRegistrationsResponse",
        json!({"registrations": array(r("ProjectRegistration"))}),
    );
    schemas
}
