//! The worker endpoints over HTTP: lease, heartbeat (waiting for a cancel), complete, with
//! lease ids as fencing tokens.

use crate::common::{TestServer, envelope, is_timestamp};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn lease(s: &TestServer, body: Value) -> (u16, Value) {
    s.request("POST", "/v1/workers/w1:lease", Some(&body.to_string()))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_heartbeat_cancel_and_acknowledge() {
    let s = TestServer::start().await;
    s.submit(
        "p",
        json!({"type": "EXPORT_IMAGE", "operationId": "x", "payload": {"seconds": 5}}),
    )
    .await;
    let (status, body) = lease(
        &s,
        json!({"types": ["EXPORT_IMAGE"], "waitTimeout": "0s", "leaseDuration": "60s"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let leased = &body["leases"][0];
    assert_eq!(body["leases"].as_array().unwrap().len(), 1);
    assert_eq!(leased["payload"], json!({"seconds": 5}));
    assert!(is_timestamp(&leased["leaseExpireTime"]));
    let op = &leased["operation"];
    assert_eq!(op["name"], "projects/p/operations/x");
    assert_eq!(op["metadata"]["state"], "RUNNING");
    assert_eq!(op["metadata"]["attempt"], 1);
    assert!(is_timestamp(&op["metadata"]["startTime"]));
    let lease_id = leased["leaseId"].as_str().unwrap().to_string();

    let beat = json!({"leaseId": lease_id, "progress": 0.25,
                      "stages": [{"displayName": "Tiling", "completeWorkUnits": "3", "totalWorkUnits": 10}],
                      "destinationUris": ["file:///out/a.tif"], "batchEecuUsageSeconds": 1.5});
    let (status, answer) = s
        .request(
            "POST",
            "/v1/projects/p/operations/x:heartbeat",
            Some(&beat.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["cancelRequested"], false);
    assert!(is_timestamp(&answer["leaseExpireTime"]));
    let (_, got) = s.request("GET", "/v1/projects/p/operations/x", None).await;
    assert_eq!(got["metadata"]["progress"], 0.25);
    assert_eq!(
        got["metadata"]["stages"],
        json!([{"displayName": "Tiling", "completeWorkUnits": "3", "totalWorkUnits": "10"}])
    );
    assert_eq!(
        got["metadata"]["destinationUris"],
        json!(["file:///out/a.tif"])
    );
    assert_eq!(got["metadata"]["batchEecuUsageSeconds"], 1.5);

    let stale = json!({"leaseId": "stale"}).to_string();
    let (status, body) = s
        .request(
            "POST",
            "/v1/projects/p/operations/x:heartbeat",
            Some(&stale),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(
        body,
        envelope(
            409,
            "ABORTED",
            "LEASE_NOT_HELD",
            "lease stale on projects/p/operations/x is not held",
            json!({"name": "projects/p/operations/x", "leaseId": "stale"})
        )
    );

    // A heartbeat that waits for a cancel returns the moment one is requested.
    let waiting = {
        let client = s.client.clone();
        let body = json!({"leaseId": lease_id, "waitForCancel": "20s"}).to_string();
        tokio::spawn(async move {
            let r = client
                .send(
                    http::Method::POST,
                    "/v1/projects/p/operations/x:heartbeat",
                    Some(body.as_bytes()),
                )
                .await
                .unwrap();
            (r.status, r.json(), Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let cancelled_at = Instant::now();
    let (status, _) = s
        .request("POST", "/v1/projects/p/operations/x:cancel", Some("{}"))
        .await;
    assert_eq!(status, 200);
    let (_, got) = s.request("GET", "/v1/projects/p/operations/x", None).await;
    assert_eq!(
        (got["metadata"]["state"].clone(), got["done"].clone()),
        (json!("CANCELLING"), json!(false))
    );
    let (status, answer, returned_at) = waiting.await.unwrap();
    assert_eq!(
        (status, answer["cancelRequested"].clone()),
        (200, json!(true))
    );
    assert!(returned_at.duration_since(cancelled_at) < Duration::from_secs(1));

    let ack = json!({"leaseId": lease_id, "error": {"code": 1, "message": "stopped"}}).to_string();
    let (status, done) = s
        .request("POST", "/v1/projects/p/operations/x:complete", Some(&ack))
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["metadata"]["state"], "CANCELLED");
    assert_eq!(done["done"], true);
    assert_eq!(done["error"], json!({"code": 1, "message": "stopped"}));
    // A late report is fenced off and changes nothing.
    let late = json!({"leaseId": lease_id, "response": {}}).to_string();
    let (status, _) = s
        .request("POST", "/v1/projects/p/operations/x:complete", Some(&late))
        .await;
    assert_eq!(status, 409);
    let (_, got) = s.request("GET", "/v1/projects/p/operations/x", None).await;
    assert_eq!(got, done);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_with_a_response_and_lease_request_rules() {
    let s = TestServer::with(|c| {
        c.task_types.push(longrun_server::config::TaskType {
            cancellable: false,
            ..longrun_server::config::TaskType::new("FIXED")
        })
    })
    .await;
    s.submit("p", json!({"type": "T", "operationId": "y"}))
        .await;
    let (_, body) = lease(&s, json!({"types": ["T"], "maxOperations": 5})).await;
    let lease_id = body["leases"][0]["leaseId"].as_str().unwrap().to_string();
    let done = json!({"leaseId": lease_id, "response": {"rows": 7}}).to_string();
    let (status, op) = s
        .request(
            "POST",
            "/v1alpha/projects/p/operations/y:complete",
            Some(&done),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(op["metadata"]["state"], "SUCCEEDED");
    assert_eq!(
        op["response"],
        json!({"@type": "type.googleapis.com/google.protobuf.Struct", "value": {"rows": 7}})
    );
    assert!(op.get("error").is_none());

    // Nothing queued: the long-poll returns {} at its timeout.
    let started = Instant::now();
    let (status, body) = lease(&s, json!({"types": ["T"], "waitTimeout": "0.2s"})).await;
    assert_eq!((status, body), (200, json!({})));
    assert!(started.elapsed() >= Duration::from_millis(200));

    for bad in [
        json!({}),
        json!({"types": []}),
        json!({"types": ["T"], "maxOperations": 101}),
        json!({"types": ["T"], "maxOperations": -1}),
        json!({"types": ["T"], "leaseDuration": "0.5s"}),
        json!({"types": ["T"], "leaseDuration": "601s"}),
        json!({"types": ["T"], "colour": "red"}),
    ] {
        let (status, body) = lease(&s, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, _) = s
        .request(
            "POST",
            "/v1/projects/p/operations/y:complete",
            Some(r#"{"leaseId": "l"}"#),
        )
        .await;
    assert_eq!(status, 400, "neither response nor error");
    let response = s
        .client
        .send(http::Method::GET, "/v1/workers/w1:lease", None)
        .await
        .unwrap();
    assert_eq!(
        (response.status, &response.headers["allow"]),
        (405, &"POST".parse::<http::HeaderValue>().unwrap())
    );

    // A type configured as not cancellable: 501, untouched.
    s.submit("p", json!({"type": "FIXED", "operationId": "f"}))
        .await;
    let (status, body) = s
        .request("POST", "/v1/projects/p/operations/f:cancel", Some("{}"))
        .await;
    assert_eq!(status, 501);
    assert_eq!(body["error"]["status"], "UNIMPLEMENTED");
    let (_, got) = s.request("GET", "/v1/projects/p/operations/f", None).await;
    assert_eq!(got["metadata"]["state"], "PENDING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_vanishes_loses_its_lease_and_the_operation_is_retried() {
    let s = TestServer::start().await;
    s.submit(
        "p",
        json!({"type": "T", "operationId": "v", "maxAttempts": 2}),
    )
    .await;
    let request = json!({"types": ["T"], "waitTimeout": "0s", "leaseDuration": "1s"});
    let (_, first) = lease(&s, request.clone()).await;
    let first_lease = first["leases"][0]["leaseId"].as_str().unwrap().to_string();
    // The worker dies: no heartbeat. Past the lease the operation is queued again.
    let started = Instant::now();
    let requeued = loop {
        let (_, op) = s.request("GET", "/v1/projects/p/operations/v", None).await;
        if op["metadata"]["state"] == "PENDING" {
            break op;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the lease never lapsed: {op}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert_eq!(requeued["metadata"]["attempt"], 2);
    assert_eq!(
        requeued["metadata"]["startTime"],
        first["leases"][0]["operation"]["metadata"]["startTime"]
    );
    let late = json!({"leaseId": first_lease, "response": {}}).to_string();
    let (status, _) = s
        .request("POST", "/v1/projects/p/operations/v:complete", Some(&late))
        .await;
    assert_eq!(
        status, 409,
        "the vanished worker's late report is fenced off"
    );
    // The last attempt lapses too: FAILED with UNAVAILABLE.
    let (_, second) = lease(&s, request).await;
    assert_eq!(second["leases"][0]["operation"]["metadata"]["attempt"], 2);
    let (_, op) = s
        .request(
            "POST",
            "/v1/projects/p/operations/v:wait",
            Some(r#"{"timeout": "5s"}"#),
        )
        .await;
    assert_eq!(op["metadata"]["state"], "FAILED", "{op}");
    assert_eq!(op["error"]["code"], 14);
}
