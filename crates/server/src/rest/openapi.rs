//! `GET /openapi.json`: an OpenAPI 3.1 document of every REST method served, generated from
//! the method table the discovery document comes from (`discovery::all`) and its schemas, so
//! the two cannot disagree. Paths are the `/v1` ones (the same methods are served under
//! `/v1beta` and `/v1alpha`), spelled segment by segment as discovery's `flatPath`.

use super::discovery;
use crate::kit::method::Method;
use serde_json::{Map, Value, json};

/// The document. Its server is `/`: the server it was read from (http or https).
pub fn document() -> Value {
    let mut paths = Map::new();
    for method in discovery::all() {
        let path = format!("/v1/{}", discovery::flat_path(method));
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[method.http.to_ascii_lowercase()] = operation(method);
    }
    let mut schemas = Map::new();
    if let Value::Object(found) = discovery::schemas() {
        for (name, schema) in found {
            schemas.insert(name, schema_of(&schema));
        }
    }
    schemas.insert("Error".into(), error_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "longrun",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Long-running operations (google.longrunning on Earth Engine's paths), \
                with longrun's extensions and the Earth Engine emulator's methods. Every path is \
                also served under /v1beta and /v1alpha. Errors are Google's envelope.",
        },
        "servers": [{"url": "/"}],
        "security": [{}, {"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An access token: from the server's /token (a service \
                        account's key file), or from an identity provider the server trusts. \
                        Needed when the server's auth mode is oauth.",
                },
            },
        },
    })
}

/// One method as an OpenAPI operation: its parameters, its body and its answers.
fn operation(method: &Method) -> Value {
    let mut parameters = Vec::new();
    for name in discovery::flat_params(method) {
        parameters.push(json!({
            "name": name, "in": "path", "required": true, "schema": {"type": "string"},
        }));
    }
    for name in discovery::segment_params(method.path) {
        parameters.push(json!({
            "name": name, "in": "path", "required": true,
            "schema": {"type": "integer", "format": "int32"},
        }));
    }
    for (name, kind, format) in method.query {
        let mut schema = json!({"type": kind});
        if let Some(format) = format {
            schema["format"] = json!(format);
        }
        let mut schema = schema_of(&schema);
        let mut parameter = json!({"name": name, "in": "query"});
        if *name == "returnPartialSuccess" {
            // Every project is reachable: `true` is answered 501 UNIMPLEMENTED.
            schema["enum"] = json!([false]);
            parameter["description"] = json!("Only false: true is answered 501 UNIMPLEMENTED.");
        }
        parameter["schema"] = schema;
        parameters.push(parameter);
    }
    let reference = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    let mut op = json!({
        "operationId": format!("{}.{}", method.resource.join("."), method.name),
        "description": method.description,
        "parameters": parameters,
        "responses": {
            "200": {
                "description": "The answer.",
                "content": {"application/json": {"schema": reference(method.response)}},
            },
            "default": {
                "description": "An error, in Google's envelope.",
                "content": {"application/json": {"schema": reference("Error")}},
            },
        },
    });
    if let Some(request) = method.request {
        op["requestBody"] = json!({
            "required": true,
            "content": {"application/json": {"schema": reference(request)}},
        });
    }
    op
}

/// A discovery schema as JSON Schema 2020-12 (OpenAPI 3.1's): `$ref`s into the components,
/// discovery's `any` as the empty schema, Google's formats as JSON Schema's.
fn schema_of(discovery: &Value) -> Value {
    match discovery {
        Value::Object(fields) => {
            if fields.get("type").and_then(Value::as_str) == Some("any") {
                return json!({});
            }
            let mut out = Map::new();
            for (key, value) in fields {
                match key.as_str() {
                    "id" | "location" | "required" => {}
                    "$ref" => {
                        let name = value.as_str().unwrap_or_default();
                        out.insert(key.clone(), json!(format!("#/components/schemas/{name}")));
                    }
                    "format" => match value.as_str() {
                        Some("google-datetime") => {
                            out.insert(key.clone(), json!("date-time"));
                        }
                        // Proto3 JSON durations: seconds with up to 9 decimals and `s`.
                        Some("google-duration") => {
                            out.insert("pattern".into(), json!("^-?[0-9]+(\\.[0-9]{1,9})?s$"));
                        }
                        // Google's other formats (a FieldMask's `google-fieldmask`): plain
                        // strings.
                        Some(other) if other.starts_with("google-") => {}
                        _ => {
                            out.insert(key.clone(), value.clone());
                        }
                    },
                    "properties" => {
                        let properties = value
                            .as_object()
                            .map(|p| p.iter().map(|(k, v)| (k.clone(), schema_of(v))).collect())
                            .unwrap_or_default();
                        out.insert(key.clone(), Value::Object(properties));
                    }
                    "items" | "additionalProperties" => {
                        out.insert(key.clone(), schema_of(value));
                    }
                    _ => {
                        out.insert(key.clone(), value.clone());
                    }
                }
            }
            // Closed: a field the table does not list is a mistake, in an answer or a request.
            if out.contains_key("properties") && !out.contains_key("additionalProperties") {
                out.insert("additionalProperties".into(), json!(false));
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Google's error envelope (`kit::error::ApiError`).
fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "status"],
                "properties": {
                    "code": {"type": "integer", "format": "int32"},
                    "message": {"type": "string"},
                    "status": {"type": "string"},
                    "details": {"type": "array", "items": {"type": "object"}},
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every method has its own path and verb, and every `$ref` names a schema.
    #[test]
    fn every_method_once_and_every_reference_resolves() {
        let doc = document();
        let served = discovery::all().count();
        let listed: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(listed, served, "two methods share a path and verb");
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let text = doc.to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = reference.split('"').next().unwrap();
            let name = target.strip_prefix("#/components/schemas/").unwrap();
            assert!(schemas.contains_key(name), "{target} names no schema");
        }
        assert!(!text.contains("\"any\""), "discovery's `any` left in");
        assert!(
            !text.contains("\"format\":\"google-"),
            "discovery's formats left in"
        );
    }

    #[test]
    fn operations_paths_are_spelled_out() {
        let doc = document();
        let cancel = &doc["paths"]["/v1/projects/{projectsId}/operations/{operationsId}:cancel"];
        assert_eq!(cancel["post"]["operationId"], "projects.operations.cancel");
        let names: Vec<&str> = cancel["post"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["projectsId", "operationsId"]);
        let list = &doc["paths"]["/v1/projects/{projectsId}/operations"]["get"];
        assert!(list["parameters"].to_string().contains("pageSize"));
    }
}
