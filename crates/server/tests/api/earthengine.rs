//! The Earth Engine client endpoints over HTTP: discovery, algorithms, task starting.
//! (The official client itself runs against them in crates/cli/tests/cli/earthengine.rs.)

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

/// A batch's answer is bounded (8 MiB): 100 list calls of 200 large operations would
/// answer about 20 MB. The parts that fit are answered; the part whose answer would pass the
/// bound and every part after it answer 429 RESOURCE_EXHAUSTED in the envelope; the whole
/// answer stays within the bound and those small errors. The calls left out are answered in
/// a batch of their own.
#[tokio::test]
async fn a_batch_answer_is_bounded() {
    const LIMIT: usize = 8 << 20;
    let s = TestServer::start().await;
    let description = "x".repeat(900);
    let mut submits = tokio::task::JoinSet::new();
    for task in 0..8 {
        let (client, description) = (s.client.clone(), description.clone());
        submits.spawn(async move {
            for i in (task..200).step_by(8) {
                let body = json!({"type": "T", "operationId": format!("op{i}"),
                                  "description": description});
                client.submit("p", &body).await.unwrap();
            }
        });
    }
    while let Some(done) = submits.join_next().await {
        done.unwrap();
    }
    let batch = |calls: std::ops::Range<usize>| {
        let mut body = String::new();
        for i in calls {
            body.push_str(&format!(
                "--b\r\nContent-Type: application/http\r\nContent-ID: <{i}>\r\n\r\n\
                 GET /v1/projects/p/operations?pageSize=1000\r\n\r\n"
            ));
        }
        body.push_str("--b--\r\n");
        body
    };
    let client = &s.client;
    let send = |body: String| async move {
        let response = client
            .send_as(
                http::Method::POST,
                "/batch",
                Some(body.as_bytes()),
                "multipart/mixed; boundary=b",
            )
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        let text = String::from_utf8(response.body.to_vec()).unwrap();
        let parts: Vec<String> = text
            .split("--batch_longrun_response")
            .filter(|p| !p.trim().is_empty() && !p.starts_with("--"))
            .map(str::to_string)
            .collect();
        (text.len(), parts)
    };
    let (length, parts) = send(batch(0..100)).await;
    assert_eq!(parts.len(), 100);
    let answered = parts
        .iter()
        .take_while(|p| p.contains("HTTP/1.1 200 OK"))
        .count();
    assert!((1..100).contains(&answered), "{answered} answered");
    for (i, part) in parts.iter().enumerate() {
        assert!(
            part.contains(&format!("Content-ID: <response-{i}>")),
            "{part}"
        );
        if i < answered {
            assert_eq!(
                part.matches("\"name\":\"projects/p/operations/op").count(),
                200
            );
            continue;
        }
        assert!(part.contains("HTTP/1.1 429 Too Many Requests"), "{part}");
        let envelope: serde_json::Value =
            serde_json::from_str(part.split("\r\n\r\n").nth(2).unwrap().trim()).unwrap();
        assert_eq!(envelope["error"]["status"], "RESOURCE_EXHAUSTED", "{part}");
        assert_eq!(
            envelope["error"]["details"][0]["reason"], "BATCH_RESPONSE_TOO_LARGE",
            "{part}"
        );
        assert_eq!(
            envelope["error"]["details"][0]["metadata"]["limitBytes"],
            LIMIT.to_string()
        );
    }
    assert!(length <= LIMIT + 100 * 1024, "{length} bytes");
    // Sent again on their own, the calls left out are answered.
    let (_, parts) = send(batch(answered..answered + 1)).await;
    assert!(parts[0].contains("HTTP/1.1 200 OK"), "{}", parts[0]);
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
