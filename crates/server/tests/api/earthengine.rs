//! The Earth Engine client endpoints over HTTP: discovery, algorithms, task starting.
//! (The official client itself runs against them in crates/cli/tests/earthengine.rs.)

use crate::common::TestServer;
use serde_json::json;

#[tokio::test]
async fn discovery_documents_follow_the_requested_version() {
    let s = TestServer::start().await;
    for version in ["v1", "v1beta", "v1alpha"] {
        let (status, doc) = s
            .request(
                "GET",
                &format!("/$discovery/rest?version={version}&prettyPrint=false"),
                None,
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(doc["id"], format!("earthengine:{version}"));
        assert!(
            doc["rootUrl"]
                .as_str()
                .unwrap()
                .starts_with("http://127.0.0.1:")
        );
        let ops = &doc["resources"]["projects"]["resources"]["operations"]["methods"];
        assert_eq!(ops["get"]["path"], format!("{version}/{{+name}}"));
        assert_eq!(
            ops["get"]["parameters"]["name"]["pattern"],
            "^projects/[^/]+/operations/.+$"
        );
        assert_eq!(ops["cancel"]["path"], format!("{version}/{{+name}}:cancel"));
        assert_eq!(
            ops["list"]["parameters"]["name"]["pattern"],
            "^projects/[^/]+$"
        );
        assert_eq!(ops["list"]["parameters"]["pageSize"]["type"], "integer");
        let image = &doc["resources"]["projects"]["resources"]["image"]["methods"];
        assert_eq!(
            image["import"]["path"],
            format!("{version}/{{+project}}/image:import")
        );
        assert!(doc["parameters"]["prettyPrint"].is_object());
    }
    let (status, error) = s.request("GET", "/$discovery/rest?version=v2", None).await;
    assert_eq!(
        (status, error["error"]["status"].as_str()),
        (404, Some("NOT_FOUND"))
    );
}

#[tokio::test]
async fn algorithms_are_listed() {
    let s = TestServer::start().await;
    let (status, body) = s
        .request("GET", "/v1/projects/p/algorithms?prettyPrint=false", None)
        .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body["algorithms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"algorithms/Feature") && names.contains(&"algorithms/Collection"));
    let (status, _) = s
        .request("POST", "/v1/projects/p/algorithms", Some("{}"))
        .await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn task_starting_methods_create_operations_of_their_type() {
    let s = TestServer::start().await;
    let starts = [
        ("image:export", "EXPORT_IMAGE"),
        ("table:export", "EXPORT_FEATURES"),
        ("video:export", "EXPORT_VIDEO"),
        ("map:export", "EXPORT_TILES"),
        ("videoMap:export", "EXPORT_VIDEO_MAP"),
        ("classifier:export", "EXPORT_CLASSIFIER"),
        ("image:import", "INGEST_IMAGE"),
        ("table:import", "INGEST_TABLE"),
    ];
    for (i, (path, op_type)) in starts.iter().enumerate() {
        let body = json!({
            "expression": {"result": "0", "values": {}}, "description": format!("task {i}"),
            "priority": {"value": 500 + i}, "requestId": format!("req-{i}"),
        });
        let url = format!("/v1alpha/projects/p/{path}?alt=json");
        let (status, op) = s.request("POST", &url, Some(&body.to_string())).await;
        assert_eq!(status, 200, "{path}: {op}");
        assert_eq!(op["metadata"]["type"], *op_type);
        assert_eq!(op["metadata"]["state"], "PENDING");
        assert_eq!(op["metadata"]["description"], format!("task {i}"));
        assert_eq!(op["metadata"]["priority"], 500 + i);
        assert_eq!(
            op["metadata"]["@type"],
            "type.googleapis.com/google.earthengine.v1alpha.OperationMetadata"
        );
        // The client retries with the same requestId: the same operation.
        let (_, again) = s.request("POST", &url, Some(&body.to_string())).await;
        assert_eq!(again["name"], op["name"], "{path}");
    }
    let (_, listed) = s.request("GET", "/v1/projects/p/operations", None).await;
    assert_eq!(listed["operations"].as_array().unwrap().len(), starts.len());

    // An ingestion without a description is named after its asset; a bare priority works.
    let (status, op) = s
        .request(
            "POST",
            "/v1/projects/p/image:import",
            Some(r#"{"imageManifest": {"name": "projects/p/assets/dem"}, "overwrite": false, "priority": 7}"#),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(
        op["metadata"]["description"],
        "Ingest projects/p/assets/dem"
    );
    assert_eq!(op["metadata"]["priority"], 7);

    // Client mistakes are 4xx in the envelope.
    for (body, reason) in [
        ("[1, 2]", "INVALID_REQUEST_BODY"),
        (r#"{"priority": "high"}"#, "INVALID_ARGUMENT"),
        (r#"{"priority": {"value": 10000}}"#, "INVALID_SUBMISSION"),
        (r#"{"description": 5}"#, "INVALID_ARGUMENT"),
        ("{", "INVALID_REQUEST_BODY"),
    ] {
        let (status, error) = s
            .request("POST", "/v1/projects/p/table:export", Some(body))
            .await;
        assert_eq!(status, 400, "{body}: {error}");
        assert_eq!(
            error["error"]["details"][0]["reason"], reason,
            "{body}: {error}"
        );
    }
    let (status, _) = s.request("GET", "/v1/projects/p/table:export", None).await;
    assert_eq!(status, 405);
    let (status, _) = s
        .request("POST", "/v1/projects/p/table:explode", Some("{}"))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn batch_carries_several_calls() {
    let s = TestServer::start().await;
    s.submit("p", json!({"type": "T", "operationId": "a"}))
        .await;
    s.submit("p", json!({"type": "T", "operationId": "b"}))
        .await;
    // As the JavaScript client writes a batch: parts with Content-IDs, request lines
    // without the HTTP version, a JSON body on the cancel.
    let body = "--batch_EARTHENGINE_batch\r\nContent-Type: application/http\r\n\
        Content-Transfer-Encoding: binary\r\nContent-ID: <0>\r\n\r\n\
        GET /v1/projects/p/operations/a?prettyPrint=false\r\n\r\n\
        --batch_EARTHENGINE_batch\r\nContent-Type: application/http\r\n\
        Content-Transfer-Encoding: binary\r\nContent-ID: <1>\r\n\r\n\
        POST /v1/projects/p/operations/b:cancel HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{}\r\n\
        --batch_EARTHENGINE_batch\r\nContent-Type: application/http\r\nContent-ID: <2>\r\n\r\n\
        GET /v1/projects/p/operations/missing HTTP/1.1\r\n\r\n\
        --batch_EARTHENGINE_batch--\r\n";
    let response = s
        .client
        .send_as(
            http::Method::POST,
            "/batch",
            Some(body.as_bytes()),
            "multipart/mixed; boundary=batch_EARTHENGINE_batch",
        )
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    let content_type = response.headers["content-type"].to_str().unwrap();
    let boundary = content_type.split("boundary=").nth(1).unwrap();
    let text = String::from_utf8(response.body.to_vec()).unwrap();
    let parts: Vec<&str> = text
        .split(&format!("--{boundary}"))
        .filter(|p| !p.trim().is_empty() && !p.starts_with("--"))
        .collect();
    assert_eq!(parts.len(), 3, "{text}");
    let expect = [
        (
            "0",
            "HTTP/1.1 200 OK",
            "\"name\":\"projects/p/operations/a\"",
        ),
        ("1", "HTTP/1.1 200 OK", "{}"),
        ("2", "HTTP/1.1 404 Not Found", "\"status\":\"NOT_FOUND\""),
    ];
    for (part, (id, status_line, body)) in parts.iter().zip(expect) {
        assert!(
            part.contains(&format!("Content-ID: <response-{id}>")),
            "{part}"
        );
        assert!(part.contains(status_line), "{part}");
        assert!(part.contains(body), "{part}");
    }
    let (_, b) = s.request("GET", "/v1/projects/p/operations/b", None).await;
    assert_eq!(b["metadata"]["state"], "CANCELLED");
    // Not multipart, or no calls: 400 in the envelope.
    let (status, error) = s.request("POST", "/batch", Some("{}")).await;
    assert_eq!(
        (status, error["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
}

/// One server for the fuzz cases. Waits answer at once, so that a generated `:wait` does
/// not hold a case for the default minute.
fn batch_server() -> String {
    static BASE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    crate::common::shared(&BASE, |c| {
        c.wait.default = std::time::Duration::ZERO;
        c.wait.max = std::time::Duration::ZERO;
    })
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 200, ..Default::default() })]
    /// Whatever a batch holds, the answer is a batch (200) or a client error, never a 5xx.
    #[test]
    fn garbled_batches_are_client_errors(
        parts in proptest::collection::vec(
            proptest::prop_oneof![
                "\\PC{0,80}",
                "(GET|POST|DELETE|PUT) /v1/projects/p/operations(/a)?(:cancel|:wait)? HTTP/1.1",
                "[A-Z]{1,8} [ -~]{0,40}",
            ],
            0..6,
        ),
        separator in proptest::prop_oneof!["\r\n", "\n", "\r\n\r\n", ""],
        boundary in "[a-z_]{1,12}",
    ) {
        let mut body = String::new();
        for part in &parts {
            body.push_str(&format!("--{boundary}{separator}Content-Type: application/http{separator}{separator}{part}{separator}{separator}"));
        }
        body.push_str(&format!("--{boundary}--"));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let status = runtime.block_on(async {
            longrun_client::Client::new(&batch_server())
                .send_as(
                    http::Method::POST,
                    "/batch",
                    Some(body.as_bytes()),
                    &format!("multipart/mixed; boundary={boundary}"),
                )
                .await
                .unwrap()
                .status
        });
        proptest::prop_assert!(status == 200 || (400..500).contains(&status), "{status} for {body:?}");
    }
}
