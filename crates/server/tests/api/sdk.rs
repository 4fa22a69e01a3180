//! The worker SDK against a real server over HTTP.

use crate::common::TestServer;
use longrun_worker::{Backend, GrpcBackend, HttpBackend, Status, Worker};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_rest_runs_operations_reports_progress_and_hears_cancel() {
    let s = TestServer::start().await;
    let backend = Arc::new(HttpBackend::new(&s.base));
    runs_operations_reports_progress_and_hears_cancel(s, backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_grpc_stream_runs_operations_reports_progress_and_hears_cancel() {
    let s = TestServer::start().await;
    let backend = Arc::new(GrpcBackend::new(&s.base).unwrap());
    runs_operations_reports_progress_and_hears_cancel(s, backend).await;
}

async fn runs_operations_reports_progress_and_hears_cancel<B: Backend>(
    s: TestServer,
    backend: Arc<B>,
) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
    let worker = Worker::new("sdk-test")
        .concurrency(4)
        .handle("ECHO", |ctx| async move {
            ctx.progress(0.5);
            ctx.stage("Echo", 1, 1);
            ctx.destination("file:///out");
            Ok(json!({"echo": ctx.payload().clone(), "key": ctx.concurrency_key()}))
        })
        .handle("SLOW", move |ctx| {
            let seen = seen_tx.clone();
            async move {
                ctx.cancelled().await;
                let _ = seen.send(Instant::now());
                Err(Status::new(
                    longrun_types::Code::Cancelled,
                    "stopped on request",
                ))
            }
        });
    let running = tokio::spawn(worker.run(backend, async {
        let _ = stopped.await;
    }));

    // Every other one with a concurrency key, which the handler sees.
    let key = |i: usize| i.is_multiple_of(2).then(|| format!("k{i}"));
    for i in 0..12 {
        let mut body = json!({"type": "ECHO", "operationId": format!("e{i}"), "payload": {"n": i}});
        if let Some(key) = key(i) {
            body["concurrencyKey"] = json!(key);
        }
        s.submit("p", body).await;
    }
    for i in 0..12 {
        let path = format!("/v1/projects/p/operations/e{i}:wait");
        let (_, op) = s
            .request("POST", &path, Some(r#"{"timeout": "10s"}"#))
            .await;
        assert_eq!(op["metadata"]["state"], "SUCCEEDED", "{op}");
        assert_eq!(
            op["response"]["value"],
            json!({"echo": {"n": i}, "key": key(i)})
        );
        assert_eq!(op["metadata"]["progress"], 0.5);
        assert_eq!(op["metadata"]["destinationUris"], json!(["file:///out"]));
    }

    s.submit("p", json!({"type": "SLOW", "operationId": "slow"}))
        .await;
    loop {
        let (_, op) = s
            .request("GET", "/v1/projects/p/operations/slow", None)
            .await;
        if op["metadata"]["state"] == "RUNNING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Give the worker's waiting heartbeat time to be in place.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let cancelled_at = Instant::now();
    s.request("POST", "/v1/projects/p/operations/slow:cancel", Some("{}"))
        .await;
    let noticed = tokio::time::timeout(Duration::from_secs(5), seen_rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(noticed.duration_since(cancelled_at) < Duration::from_secs(1));
    let (_, op) = s
        .request(
            "POST",
            "/v1/projects/p/operations/slow:wait",
            Some(r#"{"timeout": "10s"}"#),
        )
        .await;
    assert_eq!(op["metadata"]["state"], "CANCELLED");
    assert_eq!(op["error"]["message"], "stopped on request");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_rest_a_stopping_worker_releases_and_large_results_fail_clearly() {
    let s = TestServer::start().await;
    let backend = Arc::new(HttpBackend::new(&s.base));
    releases_on_shutdown_and_fails_results_over_the_limit(s, backend, 1 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_grpc_stream_a_stopping_worker_releases_and_large_results_fail_clearly() {
    let s = TestServer::start().await;
    let backend = Arc::new(GrpcBackend::new(&s.base).unwrap());
    releases_on_shutdown_and_fails_results_over_the_limit(
        s,
        backend,
        longrun_proto::MAX_MESSAGE_BYTES,
    )
    .await;
}

/// Over gRPC an idle worker stops at once: the server is told to end the wait of the
/// lease in flight (`StopLeasing`), 20 s long here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_grpc_stream_an_idle_worker_stops_without_waiting_out_its_lease_poll() {
    let s = TestServer::start().await;
    let backend = Arc::new(GrpcBackend::new(&s.base).unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = Worker::new("idle-test")
        .lease_poll(Duration::from_secs(20))
        .handle("IDLE", |_ctx| async move { Ok(json!({})) });
    let running = tokio::spawn(worker.run(backend, async {
        let _ = stopped.await;
    }));
    // The lease request is out and waiting on the server.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopping = Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
}

async fn state_of(s: &TestServer, id: &str) -> serde_json::Value {
    let (status, op) = s
        .request("GET", &format!("/v1/projects/p/operations/{id}"), None)
        .await;
    assert_eq!(status, 200, "{op}");
    op
}

/// A deploy (the worker stops mid-run, with one attempt allowed) hands the operation back:
/// PENDING, no error, its attempt not spent, so the next worker runs it to the end. Results
/// just under the transport's limit arrive; one over it fails its operation with a clear
/// error instead of being retried forever.
async fn releases_on_shutdown_and_fails_results_over_the_limit<B: Backend>(
    s: TestServer,
    backend: Arc<B>,
    limit: usize,
) {
    let worker = |runs: Arc<std::sync::atomic::AtomicUsize>| {
        Worker::new("deploy-test")
            .concurrency(4)
            .shutdown_grace(Duration::from_millis(200))
            .handle("LONG", move |_ctx| {
                let runs = runs.clone();
                async move {
                    if runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    Ok(json!({"finished": true}))
                }
            })
            .handle("BIG", |ctx| async move {
                let bytes = ctx.payload()["bytes"].as_u64().unwrap() as usize;
                Ok(json!({"blob": "x".repeat(bytes)}))
            })
    };
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let first = tokio::spawn(worker(runs.clone()).run(backend.clone(), async {
        let _ = stopped.await;
    }));
    s.submit(
        "p",
        json!({"type": "LONG", "operationId": "long", "maxAttempts": 1}),
    )
    .await;
    let started = Instant::now();
    while state_of(&s, "long").await["metadata"]["state"] != "RUNNING" {
        assert!(started.elapsed() < Duration::from_secs(10), "never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), first)
        .await
        .unwrap()
        .unwrap();
    let op = state_of(&s, "long").await;
    assert_eq!(op["metadata"]["state"], "PENDING", "{op}");
    assert_eq!(op["done"], false);
    assert!(op.get("error").is_none(), "{op}");

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let second = tokio::spawn(worker(runs.clone()).run(backend, async {
        let _ = stopped.await;
    }));
    let (_, op) = s
        .request(
            "POST",
            "/v1/projects/p/operations/long:wait",
            Some(r#"{"timeout": "10s"}"#),
        )
        .await;
    assert_eq!(op["metadata"]["state"], "SUCCEEDED", "{op}");
    assert_eq!(op["metadata"]["attempt"], 2);

    // Six results of a sixth of the limit, finishing together, all arrive; one over the
    // limit fails its operation with the reason.
    let fits = limit / 6 - 1024;
    for i in 0..6 {
        s.submit(
            "p",
            json!({"type": "BIG", "operationId": format!("big{i}"), "payload": {"bytes": fits}}),
        )
        .await;
    }
    s.submit(
        "p",
        json!({"type": "BIG", "operationId": "huge", "payload": {"bytes": limit + 1}, "maxAttempts": 3}),
    )
    .await;
    for i in 0..6 {
        let (_, op) = s
            .request(
                "POST",
                &format!("/v1/projects/p/operations/big{i}:wait"),
                Some(r#"{"timeout": "20s"}"#),
            )
            .await;
        assert_eq!(op["metadata"]["state"], "SUCCEEDED", "big{i}");
        assert_eq!(
            op["response"]["value"]["blob"].as_str().unwrap().len(),
            fits
        );
    }
    let (_, op) = s
        .request(
            "POST",
            "/v1/projects/p/operations/huge:wait",
            Some(r#"{"timeout": "20s"}"#),
        )
        .await;
    assert_eq!(op["metadata"]["state"], "FAILED", "{op}");
    assert_eq!(op["error"]["code"], 8, "{op}");
    assert_eq!(op["metadata"]["attempt"], 1, "{op}");
    assert!(
        op["error"]["message"]
            .as_str()
            .unwrap()
            .contains("over the server's limit"),
        "{op}"
    );
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_rest_a_handler_submits_children_and_waits_for_them() {
    let s = TestServer::start().await;
    let backend = Arc::new(HttpBackend::new(&s.base));
    submits_children_and_waits_for_them(s, backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_grpc_a_handler_submits_children_and_waits_for_them() {
    let s = TestServer::start().await;
    let backend = Arc::new(GrpcBackend::new(&s.base).unwrap());
    submits_children_and_waits_for_them(s, backend).await;
}

/// A handler submits three children of the operation it runs (docs/operations.md#parents-and-children),
/// which the same worker runs while their parent runs, waits for them, and answers with
/// their states; a child asked for after its parent was cancelled is refused.
async fn submits_children_and_waits_for_them<B: Backend>(s: TestServer, backend: Arc<B>) {
    use longrun_worker::{BackendError, Child};
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let worker = Worker::new("sdk-children")
        .concurrency(4)
        .handle("FANOUT", |ctx| async move {
            let mut children = Vec::new();
            for i in 0..3 {
                let mut child = Child::new("LEAF", json!({"i": i}));
                child.operation_id = Some(format!("{}-{i}", ctx.name().id()));
                let name = ctx
                    .submit_child(&child)
                    .await
                    .map_err(|e| Status::new(longrun_types::Code::Internal, e.to_string()))?;
                children.push(name);
            }
            let states = ctx
                .wait_children(&children, Duration::from_secs(20))
                .await
                .map_err(|e| Status::new(longrun_types::Code::Internal, e.to_string()))?;
            let states: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
            Ok(json!({"children": states}))
        })
        .handle("LEAF", |ctx| async move { Ok(ctx.payload().clone()) })
        .handle("LATE", |ctx| async move {
            ctx.cancelled().await;
            let refused = ctx.submit_child(&Child::new("LEAF", json!({}))).await;
            let code = match refused {
                Err(BackendError::Refused { code, .. }) => code,
                other => panic!("a child under a cancelled parent: {other:?}"),
            };
            Err(Status::new(
                longrun_types::Code::Cancelled,
                format!("refused with code {code}"),
            ))
        });
    let running = tokio::spawn(worker.run(backend, async {
        let _ = stopped.await;
    }));
    s.submit("p", json!({"type": "FANOUT", "operationId": "fan"}))
        .await;
    let name = longrun_types::Name::parse("projects/p/operations/fan").unwrap();
    let done = s
        .client
        .wait(&name, Some(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(done["metadata"]["state"], "SUCCEEDED", "{done}");
    assert_eq!(
        done["response"]["value"]["children"],
        json!(["SUCCEEDED", "SUCCEEDED", "SUCCEEDED"]),
        "{done}"
    );
    let child = s
        .client
        .get(&longrun_types::Name::parse("projects/p/operations/fan-1").unwrap())
        .await
        .unwrap();
    assert_eq!(child["metadata"]["parent"], "projects/p/operations/fan");
    assert_eq!(child["response"]["value"]["i"], 1, "{child}");

    s.submit("p", json!({"type": "LATE", "operationId": "late"}))
        .await;
    let late = longrun_types::Name::parse("projects/p/operations/late").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.client.get(&late).await.unwrap()["metadata"]["state"] != "RUNNING" {
        assert!(Instant::now() < deadline, "never leased");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.client.cancel(&late).await.unwrap();
    let done = s
        .client
        .wait(&late, Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(done["metadata"]["state"], "CANCELLED", "{done}");
    assert_eq!(done["error"]["message"], "refused with code 9", "{done}");
    let _ = stop.send(());
    running.await.unwrap();
    s.stop().await;
}
