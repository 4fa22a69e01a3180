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
