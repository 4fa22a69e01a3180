//! Restarts: kill -9 and SIGTERM, and the same data directory served again.

use super::name;
use longrun_client::Client;
use longrun_testkit::process::Server;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::new(&server.base);
    let mut tasks = Vec::new();
    for i in 0..60 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let op = client
                .submit("p", &json!({"type": "T", "operationId": format!("op{i}")}))
                .await
                .unwrap();
            if i % 2 == 0 {
                client.cancel(&name(&format!("op{i}"))).await.unwrap();
            }
            op
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Every write above was acknowledged; die without any chance to flush.
    server.signal(libc::SIGKILL);
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(!status.success());

    let server = Server::start(dir.path());
    let client = Client::new(&server.base);
    for i in 0..60 {
        let op = client.get(&name(&format!("op{i}"))).await.unwrap();
        let expected = if i % 2 == 0 { "CANCELLED" } else { "PENDING" };
        assert_eq!(op["metadata"]["state"], expected, "op{i}");
        if i % 2 == 0 {
            assert_eq!(op["done"], true);
            assert_eq!(op["error"]["code"], 1);
            assert!(op["metadata"]["endTime"].is_string());
        }
    }
    let page = client.list("p", "", 1000, "").await.unwrap();
    assert_eq!(page["operations"].as_array().unwrap().len(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_cancels_survive_a_restart_and_nothing_stays_cancelling() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[[task_type]]\ntype = \"T\"\ncancel_grace = \"1s\"\n",
    )
    .unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let data = dir.path().join("data");
    let server = Server::start_with(&data, &args);
    let client = Client::new(&server.base);
    client
        .submit("p", &json!({"type": "T", "operationId": "x"}))
        .await
        .unwrap();
    let lease_request = json!({"types": ["T"], "waitTimeout": "0s", "leaseDuration": "600s"});
    let leased = client
        .call(
            http::Method::POST,
            "/v1/workers/w:lease",
            Some(&lease_request),
        )
        .await
        .unwrap();
    let lease_id = leased["leases"][0]["leaseId"].as_str().unwrap().to_string();
    client.cancel(&name("x")).await.unwrap();
    server.signal(libc::SIGKILL);
    server.wait_exit(Duration::from_secs(10));

    let server = Server::start_with(&data, &args);
    let client = Client::new(&server.base);
    let op = client.get(&name("x")).await.unwrap();
    assert_eq!(op["metadata"]["state"], "CANCELLING");
    // The lease outlived the restart: the worker's next heartbeat learns of the cancel.
    let beat = client
        .call(
            http::Method::POST,
            "/v1/projects/p/operations/x:heartbeat",
            Some(&json!({"leaseId": lease_id})),
        )
        .await
        .unwrap();
    assert_eq!(beat["cancelRequested"], true);
    // The worker ignores it; past the grace the operation ends CANCELLED.
    let op = client
        .wait(&name("x"), Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(op["metadata"]["state"], "CANCELLED");
    assert_eq!(op["error"]["code"], 1);
    let late = client
        .call(
            http::Method::POST,
            "/v1/projects/p/operations/x:complete",
            Some(&json!({"leaseId": lease_id, "response": {}})),
        )
        .await
        .unwrap_err();
    assert!(late.to_string().contains("ABORTED"), "{late}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_waits_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::new(&server.base);
    client
        .submit("p", &json!({"type": "T", "operationId": "x"}))
        .await
        .unwrap();
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move { client.wait(&name("x"), Some(Duration::from_secs(60))).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.signal(libc::SIGTERM);
    let op = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(op["metadata"]["state"], "PENDING");
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    // The data directory holds the database and the secret.
    assert!(dir.path().join("longrun.db").exists());
    assert!(dir.path().join("secret").exists());
}

/// A parent cancelled with 5,000 PENDING children, the server killed (kill -9) as the
/// cancel answers, with its cascade under way: the cascade is on disk with the cancel, so
/// the next start finishes it; the parent ends CANCELLED counting every child, and no
/// child is left PENDING (docs/operations.md#parents-and-children).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_a_cascade_resumes_it() {
    const CHILDREN: usize = 5000;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[project_defaults]\nmax_queued = 100000\n").unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let data = dir.path().join("data");
    let server = Server::start_with(&data, &args);
    let client = Client::new(&server.base);
    client
        .submit("p", &json!({"type": "JOB", "operationId": "job"}))
        .await
        .unwrap();
    for chunk in (0..CHILDREN).collect::<Vec<_>>().chunks(1000) {
        let requests: Vec<_> = chunk
            .iter()
            .map(|i| {
                json!({"type": "PART", "operationId": format!("part-{i}"),
                       "parent": "projects/p/operations/job"})
            })
            .collect();
        client
            .call(
                http::Method::POST,
                "/v1/projects/p/operations:batchSubmit",
                Some(&json!({ "requests": requests })),
            )
            .await
            .unwrap();
    }
    client.cancel(&name("job")).await.unwrap();
    server.signal(libc::SIGKILL);
    server.wait_exit(Duration::from_secs(10));

    let server = Server::start_with(&data, &args);
    let client = Client::new(&server.base);
    let first = client.get(&name("job")).await.unwrap();
    assert_ne!(
        first["metadata"]["state"], "PENDING",
        "the cancel was acknowledged"
    );
    let job = client
        .wait(&name("job"), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(job["metadata"]["state"], "CANCELLED", "{job}");
    let info = job["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["reason"] == "CHILDREN_CANCELLED")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        info["metadata"]["cancelledDescendants"],
        CHILDREN.to_string(),
        "{job}"
    );
    let open = client
        .list("p", "metadata.type = PART AND done = false", 10, "")
        .await
        .unwrap();
    assert!(
        open["operations"].as_array().is_none_or(Vec::is_empty),
        "{open}"
    );
    let _ = server;
}
