//! The built-in `simulate` executor, end to end over HTTP.

use crate::common::{TestServer, is_timestamp};
use longrun_server::config::{Executor, TaskType};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn simulated() -> TestServer {
    TestServer::with(|c| {
        c.task_types.push(TaskType {
            executor: Executor::Simulate,
            duration: Some(Duration::from_millis(300)),
            ..TaskType::new("EXPORT_IMAGE")
        })
    })
    .await
}

async fn wait(s: &TestServer, id: &str) -> Value {
    let path = format!("/v1/projects/p/operations/{id}:wait");
    let (status, op) = s
        .request("POST", &path, Some(r#"{"timeout": "10s"}"#))
        .await;
    assert_eq!(status, 200);
    op
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_to_the_configured_outcome_with_staged_progress() {
    let s = simulated().await;
    s.submit("p", json!({"type": "EXPORT_IMAGE", "operationId": "ok"}))
        .await;
    let op = wait(&s, "ok").await;
    assert_eq!(op["metadata"]["state"], "SUCCEEDED", "{op}");
    assert_eq!(
        op["response"]["@type"],
        "type.googleapis.com/google.protobuf.Struct"
    );
    assert_eq!(op["metadata"]["progress"], 1.0);
    assert!(is_timestamp(&op["metadata"]["startTime"]));
    let stages = op["metadata"]["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 3);
    assert!(
        stages
            .iter()
            .all(|s| s["completeWorkUnits"] == s["totalWorkUnits"])
    );

    s.submit(
        "p",
        json!({"type": "EXPORT_IMAGE", "operationId": "bad",
                         "payload": {"simulate": {"outcome": "FAILED", "duration": "0.1s"}}}),
    )
    .await;
    let op = wait(&s, "bad").await;
    assert_eq!(op["metadata"]["state"], "FAILED");
    assert_eq!(op["error"]["code"], 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_simulation_stops_at_once_on_cancel() {
    let s = simulated().await;
    s.submit(
        "p",
        json!({"type": "EXPORT_IMAGE", "operationId": "hang",
                         "payload": {"simulate": {"outcome": "HANG", "duration": "0s"}}}),
    )
    .await;
    let started = Instant::now();
    loop {
        let (_, op) = s
            .request("GET", "/v1/projects/p/operations/hang", None)
            .await;
        if op["metadata"]["state"] == "RUNNING" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never started: {op}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cancelled_at = Instant::now();
    s.request("POST", "/v1/projects/p/operations/hang:cancel", Some("{}"))
        .await;
    let op = wait(&s, "hang").await;
    assert_eq!(op["metadata"]["state"], "CANCELLED", "{op}");
    assert_eq!(op["error"]["code"], 1);
    assert!(cancelled_at.elapsed() < Duration::from_secs(2));
}
