//! get, cancel, delete, wait and submit, as docs/operations.md words them.

use crate::common::{TestServer, envelope, is_timestamp};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The operation with its server-set timestamps checked and replaced by the given values.
fn times(op: &Value) -> (Value, Value) {
    let m = &op["metadata"];
    assert!(is_timestamp(&m["createTime"]), "{op}");
    assert!(is_timestamp(&m["updateTime"]), "{op}");
    (m["createTime"].clone(), m["updateTime"].clone())
}

#[tokio::test]
async fn submit_then_get_returns_the_whole_operation() {
    let s = TestServer::start().await;
    let op = s
        .submit(
            "p",
            json!({"type": "EXPORT_IMAGE", "description": "my export", "priority": 7,
                   "operationId": "exports/2026/a1", "scriptUri": "file:///s.js",
                   "destinationUris": ["file:///exports/a.tif"], "payload": {"k": 1}}),
        )
        .await;
    let (created, updated) = times(&op);
    assert_eq!(created, updated);
    let expected = json!({
        "name": "projects/p/operations/exports/2026/a1",
        "metadata": {
            "@type": "type.googleapis.com/google.earthengine.v1.OperationMetadata",
            "state": "PENDING",
            "description": "my export",
            "type": "EXPORT_IMAGE",
            "priority": 7,
            "createTime": created,
            "updateTime": updated,
            "attempt": 1,
            "scriptUri": "file:///s.js",
            "destinationUris": ["file:///exports/a.tif"],
            // PENDING, and nobody asked for its type (docs/operations.md#why-work-waits).
            "waitingReason": "NO_WORKER",
        },
        "done": false,
    });
    assert_eq!(op, expected);
    for (version, type_url) in [
        ("v1", "google.earthengine.v1.OperationMetadata"),
        ("v1beta", "google.earthengine.v1beta.OperationMetadata"),
        ("v1alpha", "google.earthengine.v1alpha.OperationMetadata"),
    ] {
        let path =
            format!("/{version}/projects/p/operations/exports/2026/a1?alt=json&prettyPrint=false");
        let (status, got) = s.request("GET", &path, None).await;
        assert_eq!(status, 200);
        let mut expected = expected.clone();
        expected["metadata"]["@type"] = json!(format!("type.googleapis.com/{type_url}"));
        assert_eq!(got, expected);
    }
    // Defaults: priority 100, empty description present, generated 24-character id.
    let op = s.submit("p", json!({"type": "INGEST_TABLE"})).await;
    assert_eq!(op["metadata"]["priority"], 100);
    assert_eq!(op["metadata"]["description"], "");
    let id = op["name"]
        .as_str()
        .unwrap()
        .strip_prefix("projects/p/operations/")
        .unwrap();
    assert_eq!(id.len(), 24);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    );
}

#[tokio::test]
async fn multi_segment_ids_and_encoded_slashes() {
    let s = TestServer::start().await;
    s.submit("p", json!({"type": "T", "operationId": "a%2Fb/c"}))
        .await;
    let (status, op) = s
        .request("GET", "/v1/projects/p/operations/a%2Fb/c", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(op["name"], "projects/p/operations/a%2Fb/c");
    // Lower-case hex is the same name; a real slash is another name.
    let (status, _) = s
        .request("GET", "/v1/projects/p/operations/a%2fb/c", None)
        .await;
    assert_eq!(status, 200);
    let (status, body) = s
        .request("GET", "/v1/projects/p/operations/a/b/c", None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        envelope(
            404,
            "NOT_FOUND",
            "OPERATION_NOT_FOUND",
            "operation projects/p/operations/a/b/c not found",
            json!({"name": "projects/p/operations/a/b/c"})
        )
    );
    // GET of `x:cancel` is a get of an operation whose last segment is `x:cancel`.
    let (status, body) = s
        .request("GET", "/v1/projects/p/operations/a%2Fb/c:cancel", None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        body["error"]["details"][0]["metadata"]["name"],
        "projects/p/operations/a%2Fb/c%3Acancel"
    );
}

#[tokio::test]
async fn cancel_of_pending_is_durable_done_and_idempotent() {
    let s = TestServer::start().await;
    let op = s
        .submit("p", json!({"type": "T", "operationId": "x"}))
        .await;
    let (created, _) = times(&op);
    for body in [Some("{}"), None, Some("")] {
        let (status, response) = s
            .request("POST", "/v1alpha/projects/p/operations/x:cancel", body)
            .await;
        assert_eq!((status, response), (200, json!({})), "body {body:?}");
    }
    let (status, got) = s.request("GET", "/v1/projects/p/operations/x", None).await;
    assert_eq!(status, 200);
    let end = got["metadata"]["endTime"].clone();
    assert!(is_timestamp(&end));
    assert_eq!(
        got,
        json!({
            "name": "projects/p/operations/x",
            "metadata": {
                "@type": "type.googleapis.com/google.earthengine.v1.OperationMetadata",
                "state": "CANCELLED",
                "description": "",
                "type": "T",
                "priority": 100,
                "createTime": created,
                "updateTime": end,
                "endTime": end,
                "attempt": 1,
            },
            "done": true,
            "error": {"code": 1, "message": "Operation cancelled by user."},
        })
    );
    // A later cancel changes nothing.
    let (_, again) = s.request("GET", "/v1/projects/p/operations/x", None).await;
    assert_eq!(again, got);
    // Unknown, and bodies with fields.
    let (status, body) = s
        .request("POST", "/v1/projects/p/operations/nope:cancel", Some("{}"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    let (status, body) = s
        .request(
            "POST",
            "/v1/projects/p/operations/x:cancel",
            Some(r#"{"name":"x"}"#),
        )
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["error"]["details"][0]["metadata"],
        json!({"field": "name"})
    );
    let (status, _) = s
        .request(
            "POST",
            "/v1/projects/p/operations/x:cancel",
            Some("not json"),
        )
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn delete_removes_only_done_operations() {
    let s = TestServer::start().await;
    s.submit("p", json!({"type": "T", "operationId": "x"}))
        .await;
    let (status, body) = s
        .request("DELETE", "/v1/projects/p/operations/x", None)
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        envelope(
            400,
            "FAILED_PRECONDITION",
            "OPERATION_NOT_DONE",
            "operation projects/p/operations/x is not done; cancel it first or wait for it to finish",
            json!({"name": "projects/p/operations/x"})
        )
    );
    s.request("POST", "/v1/projects/p/operations/x:cancel", Some("{}"))
        .await;
    let (status, body) = s
        .request("DELETE", "/v1/projects/p/operations/x", None)
        .await;
    assert_eq!((status, body), (200, json!({})));
    let (status, _) = s.request("GET", "/v1/projects/p/operations/x", None).await;
    assert_eq!(status, 404);
    let (status, _) = s
        .request("DELETE", "/v1/projects/p/operations/x", None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn wait_times_out_with_the_current_operation_or_returns_when_done() {
    let s = TestServer::start().await;
    s.submit("p", json!({"type": "T", "operationId": "x"}))
        .await;
    let started = Instant::now();
    let (status, op) = s
        .request(
            "POST",
            "/v1/projects/p/operations/x:wait",
            Some(r#"{"timeout": "0.2s"}"#),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(op["done"], false);
    assert_eq!(op["metadata"]["state"], "PENDING");
    assert!(started.elapsed() >= Duration::from_millis(200));

    let client = s.client.clone();
    let waiter = tokio::spawn(async move {
        let body = br#"{"timeout": "30s"}"#;
        let r = client
            .send(
                http::Method::POST,
                "/v1/projects/p/operations/x:wait",
                Some(body),
            )
            .await
            .unwrap();
        (r.status, r.json(), Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.request("POST", "/v1/projects/p/operations/x:cancel", Some("{}"))
        .await;
    let cancelled_at = Instant::now();
    let (status, op, returned_at) = waiter.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(op["metadata"]["state"], "CANCELLED");
    assert_eq!(op["done"], true);
    assert!(returned_at.duration_since(cancelled_at) < Duration::from_secs(2));

    // Done: at once, with or without a body.
    let (status, op) = s
        .request("POST", "/v1/projects/p/operations/x:wait", None)
        .await;
    assert_eq!((status, op["done"].clone()), (200, json!(true)));
    for bad in [
        r#"{"timeout": "5"}"#,
        r#"{"timeout": "-1s"}"#,
        r#"{"timeout": 5}"#,
        r#"{"deadline": "5s"}"#,
    ] {
        let (status, body) = s
            .request("POST", "/v1/projects/p/operations/x:wait", Some(bad))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    }
    let (status, _) = s
        .request("POST", "/v1/projects/p/operations/nope:wait", None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn wait_is_capped_by_the_server_maximum() {
    let s = TestServer::with(|c| {
        c.wait.default = Duration::from_millis(100);
        c.wait.max = Duration::from_millis(300);
    })
    .await;
    s.submit("p", json!({"type": "T", "operationId": "x"}))
        .await;
    let started = Instant::now();
    let (status, op) = s
        .request(
            "POST",
            "/v1/projects/p/operations/x:wait",
            Some(r#"{"timeout": "3600s"}"#),
        )
        .await;
    assert_eq!((status, op["done"].clone()), (200, json!(false)));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
}

#[tokio::test]
async fn submit_deduplicates_and_validates() {
    let s = TestServer::with(|c| c.project_defaults.max_queued = 3).await;
    let first = s
        .submit("p", json!({"type": "T", "requestId": "r-1"}))
        .await;
    let again = s
        .submit(
            "p",
            json!({"type": "T", "request_id": "r-1", "description": "ignored"}),
        )
        .await;
    assert_eq!(again, first);
    // Request ids are per project.
    let other = s
        .submit("q", json!({"type": "T", "requestId": "r-1"}))
        .await;
    assert_ne!(other["name"], first["name"]);

    s.submit("p", json!({"type": "T", "operationId": "dup"}))
        .await;
    let (status, body) = s
        .request(
            "POST",
            "/v1/projects/p/operations:submit",
            Some(r#"{"type":"T","operationId":"dup"}"#),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        body,
        envelope(
            409,
            "ALREADY_EXISTS",
            "OPERATION_ALREADY_EXISTS",
            "operation projects/p/operations/dup already exists",
            json!({"name": "projects/p/operations/dup"})
        )
    );
    s.submit("p", json!({"type": "T"})).await;
    let (status, body) = s
        .request(
            "POST",
            "/v1/projects/p/operations:submit",
            Some(r#"{"type":"T"}"#),
        )
        .await;
    assert_eq!(status, 429);
    assert_eq!(
        body,
        envelope(
            429,
            "RESOURCE_EXHAUSTED",
            "QUEUE_FULL",
            "project p has 3 pending operations, its queue limit",
            json!({"project": "p", "limit": "3"})
        )
    );
    for bad in [
        r#"{"type":"T","priority":-1}"#,
        r#"{"type":"T","priority":10000}"#,
        r#"{"type":"T","priority":"high"}"#,
        r#"{"type":""}"#,
        r#"{}"#,
        r#"{"type":"T","colour":"red"}"#,
        r#"{"type":"T","operationId":"a//b"}"#,
        r#"{"type":"T","timeout":"1h"}"#,
        r#"{"type":"T","maxAttempts":0}"#,
        r#"[1,2]"#,
    ] {
        let (status, body) = s
            .request("POST", "/v1/projects/q/operations:submit", Some(bad))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["status"], "INVALID_ARGUMENT", "{bad}");
        assert_eq!(
            body["error"]["details"][0]["@type"],
            "type.googleapis.com/google.rpc.ErrorInfo"
        );
    }
    let (_, body) = s
        .request(
            "POST",
            "/v1/projects/q/operations:submit",
            Some(r#"{"type":"T","colour":"red"}"#),
        )
        .await;
    assert_eq!(body["error"]["details"][0]["metadata"]["field"], "colour");
}
