//! Length limits of ids and names: each has one limit, enforced alike on every store
//! before anything is stored (400 INVALID_ARGUMENT, ErrorInfo reason `TOO_LONG` with the
//! field and the limit), and the longest values accepted are stored whole on every store
//! (PostgreSQL's index rows included).

use crate::common::TestServer;
use longrun_testkit::postgres::Schema;
use serde_json::{Value, json};

/// A request that must be refused for `field` being longer than `limit` bytes.
async fn too_long(
    s: &TestServer,
    method: &str,
    path: &str,
    body: Option<Value>,
    field: &str,
    limit: usize,
) {
    let body = body.map(|b| b.to_string());
    let (status, error) = s.request(method, path, body.as_deref()).await;
    let what = format!("{method} {}: {error}", &path[..path.len().min(80)]);
    assert_eq!(status, 400, "{what}");
    assert_eq!(error["error"]["status"], "INVALID_ARGUMENT", "{what}");
    let info = &error["error"]["details"][0];
    assert_eq!(info["reason"], "TOO_LONG", "{what}");
    assert_eq!(info["metadata"]["field"], field, "{what}");
    assert_eq!(info["metadata"]["limit"], limit.to_string(), "{what}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(field) && message.contains(&format!("{limit} bytes")),
        "{message}"
    );
}

async fn ok(s: &TestServer, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string());
    let (status, answer) = s.request(method, path, body.as_deref()).await;
    assert_eq!(
        status,
        200,
        "{method} {}: {answer}",
        &path[..path.len().min(80)]
    );
    answer
}

async fn long_ids_are_refused_alike(s: &TestServer) {
    let x = "x".repeat(3000);
    let submit = "/v1/projects/p/operations:submit";
    for (body, field, limit) in [
        (json!({"type": "T", "operationId": x}), "operationId", 1024),
        (json!({"type": "T", "requestId": x}), "requestId", 256),
        (json!({"type": x}), "type", 256),
        (
            json!({"type": "T", "concurrencyKey": x}),
            "concurrencyKey",
            256,
        ),
    ] {
        too_long(s, "POST", submit, Some(body), field, limit).await;
    }
    // Percent-encoding counts: 400 characters of `é` are 2,400 bytes of the canonical name.
    let accented = "é".repeat(400);
    too_long(
        s,
        "POST",
        submit,
        Some(json!({"type": "T", "operationId": accented})),
        "operationId",
        1024,
    )
    .await;
    too_long(
        s,
        "GET",
        &format!("/v1/projects/{x}/operations"),
        None,
        "project",
        256,
    )
    .await;
    too_long(
        s,
        "GET",
        &format!("/v1/projects/p/operations/{x}"),
        None,
        "name",
        1024,
    )
    .await;
    too_long(
        s,
        "POST",
        &format!("/v1/workers/{x}:lease"),
        Some(json!({"types": ["T"]})),
        "worker",
        256,
    )
    .await;
    too_long(
        s,
        "POST",
        "/v1/workers/w:lease",
        Some(json!({"types": ["T", x]})),
        "types[1]",
        256,
    )
    .await;
    too_long(
        s,
        "POST",
        &format!("/v1/projects/p/assets?assetId={x}"),
        Some(json!({"type": "FOLDER"})),
        "assetId",
        512,
    )
    .await;
    too_long(
        s,
        "GET",
        &format!("/v1/projects/p/assets/{x}"),
        None,
        "assetId",
        512,
    )
    .await;
    too_long(
        s,
        "POST",
        "/v1/projects/p/serviceAccounts",
        Some(json!({"accountId": x, "keyId": "ab", "publicKeyPem": "-"})),
        "accountId",
        30,
    )
    .await;

    // The longest values are stored whole: a project id of 256 bytes, an operation name of
    // 1,024, a type, request id and concurrency key of 256 each, in one operation.
    let project = "p".repeat(256);
    let prefix = format!("projects/{project}/operations/");
    let id = "i".repeat(1024 - prefix.len());
    let (t, request, key) = ("t".repeat(256), "r".repeat(256), "k".repeat(256));
    let op = ok(
        s,
        "POST",
        &format!("/v1/projects/{project}/operations:submit"),
        Some(json!({"type": t, "operationId": id, "requestId": request, "concurrencyKey": key})),
    )
    .await;
    assert_eq!(op["name"], format!("{prefix}{id}"));
    let got = ok(s, "GET", &format!("/v1/{prefix}{id}"), None).await;
    assert_eq!(got["metadata"]["concurrencyKey"], json!(key));
    let leased = ok(
        s,
        "POST",
        &format!("/v1/workers/{}:lease", "w".repeat(256)),
        Some(json!({"types": [t], "waitTimeout": "0s"})),
    )
    .await;
    assert_eq!(leased["leases"][0]["operation"]["name"], op["name"]);
    let lease_id = leased["leases"][0]["leaseId"].clone();
    too_long(
        s,
        "POST",
        &format!("/v1/{prefix}{id}:heartbeat"),
        Some(json!({"leaseId": x})),
        "leaseId",
        256,
    )
    .await;
    ok(
        s,
        "POST",
        &format!("/v1/{prefix}{id}:complete"),
        Some(json!({"leaseId": lease_id, "response": {}})),
    )
    .await;

    // Assets: an id of 512 bytes, nested, in a project of 256.
    let folder = "f".repeat(255);
    let leaf = format!("{folder}/{}", "a".repeat(256));
    assert_eq!(leaf.len(), 512);
    for (asset, kind) in [(&folder, "FOLDER"), (&leaf, "IMAGE_COLLECTION")] {
        ok(
            s,
            "POST",
            &format!("/v1/projects/{project}/assets?assetId={asset}"),
            Some(json!({"type": kind})),
        )
        .await;
    }
    let got = ok(
        s,
        "GET",
        &format!("/v1/projects/{project}/assets/{leaf}"),
        None,
    )
    .await;
    assert_eq!(got["name"], format!("projects/{project}/assets/{leaf}"));
    // A move that would make what the folder holds longer than the limit is refused, and
    // nothing moves.
    too_long(
        s,
        "POST",
        &format!("/v1/projects/{project}/assets/{folder}:move"),
        Some(json!({"destinationName": format!("projects/{project}/assets/{}", "d".repeat(300))})),
        "destinationName",
        512,
    )
    .await;
    ok(
        s,
        "GET",
        &format!("/v1/projects/{project}/assets/{leaf}"),
        None,
    )
    .await;
}

#[tokio::test]
async fn long_ids_are_refused_alike_on_sqlite() {
    let s = TestServer::start().await;
    long_ids_are_refused_alike(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn long_ids_are_refused_alike_on_postgres() {
    let Some(schema) = Schema::create("limits").await else {
        return;
    };
    let s = crate::postgres::server_on(schema.url()).await;
    long_ids_are_refused_alike(&s).await;
    crate::postgres::finish(schema, [s]).await;
}
