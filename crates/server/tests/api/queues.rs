//! Queues (docs/queues.md): exact counts through submits, leases, cancels and completions;
//! a pause that leases nothing while work piles up, gives `waitingReason` PAUSED and holds
//! on every server sharing a PostgreSQL store; a resume that wakes the worker waiting on
//! another server; the whole project's pause; the metrics; and errors.

use crate::common::TestServer;
use crate::delayed::listed;
use crate::postgres::{finish, server_with, three_servers};
use longrun_testkit::postgres::Schema;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn queue(s: &TestServer, path: &str) -> Value {
    let (status, q) = s
        .request("GET", &format!("/v1/projects/p/{path}"), None)
        .await;
    assert_eq!(status, 200, "{q}");
    q
}

async fn post(s: &TestServer, path: &str) -> (u16, Value) {
    s.request("POST", &format!("/v1/projects/p/{path}"), Some("{}"))
        .await
}

/// (state, pendingCount, runningCount) of a queue.
fn counts(q: &Value) -> (&str, &str, &str) {
    let text = |k: &str| q[k].as_str().unwrap_or("");
    (text("state"), text("pendingCount"), text("runningCount"))
}

async fn counts_pause_and_resume(s: &TestServer) {
    let empty = queue(s, "queues/T").await;
    assert_eq!(
        empty,
        json!({"name": "projects/p/queues/T", "state": "RUNNING", "pendingCount": "0",
               "runningCount": "0"})
    );
    let first = s
        .submit("p", json!({"type": "T", "operationId": "a"}))
        .await;
    for id in ["b", "c", "d"] {
        s.submit("p", json!({"type": "T", "operationId": id})).await;
    }
    s.submit("p", json!({"type": "U", "operationId": "u"}))
        .await;
    let later =
        json!({"type": "T", "operationId": "later", "scheduleTime": "2099-01-01T00:00:00Z"});
    s.submit("p", later).await;
    let q = queue(s, "queues/T").await;
    assert_eq!(counts(&q), ("RUNNING", "5", "0"));
    assert_eq!(q["oldestPendingTime"], first["metadata"]["createTime"]);

    let leased = s.lease_now("w", &["T"], 2).await;
    assert_eq!(leased.len(), 2);
    s.succeed(&leased[0]).await;
    let running = leased[1]["operation"]["name"].as_str().unwrap();
    let (status, _) = s
        .request("POST", &format!("/v1/{running}:cancel"), Some("{}"))
        .await;
    assert_eq!(status, 200);
    let (status, _) = post(s, "operations/d:cancel").await;
    assert_eq!(status, 200);
    // a and b leased (one done, one CANCELLING), d cancelled while PENDING.
    assert_eq!(counts(&queue(s, "queues/T").await), ("RUNNING", "2", "1"));

    // Paused: nothing is leased while work piles up; submit, get and cancel go on.
    let (status, paused) = post(s, "queues/T:pause").await;
    assert_eq!((status, counts(&paused)), (200, ("PAUSED", "2", "1")));
    let (status, again) = post(s, "queues/T:pause").await;
    assert_eq!((status, &again), (200, &paused));
    s.submit("p", json!({"type": "T", "operationId": "e"}))
        .await;
    assert!(s.lease_now("w", &["T"], 10).await.is_empty());
    assert_eq!(s.lease_now("w", &["U"], 10).await.len(), 1);
    let (_, e) = s.request("GET", "/v1/projects/p/operations/e", None).await;
    assert_eq!(e["metadata"]["waitingReason"], "PAUSED", "{e}");
    assert_eq!(
        listed(s, "metadata.waitingReason = PAUSED").await,
        ["e", "c"]
    );
    let (status, listed_queues) = s.request("GET", "/v1/projects/p/queues", None).await;
    assert_eq!(status, 200);
    let rows: Vec<_> = listed_queues["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| (q["name"].as_str().unwrap(), counts(q)))
        .collect();
    assert_eq!(
        rows,
        [
            ("projects/p/queues/T", ("PAUSED", "3", "1")),
            ("projects/p/queues/U", ("RUNNING", "0", "1"))
        ]
    );

    // The metrics say the same.
    let text = crate::metrics::scrape(s).await;
    for line in [
        "longrun_queue_pending{project=\"p\",type=\"T\"} 3",
        "longrun_queue_running{project=\"p\",type=\"T\"} 1",
        "longrun_queue_paused{project=\"p\",type=\"T\"} 1",
        "longrun_queue_paused{project=\"p\",type=\"U\"} 0",
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    assert!(text.contains("longrun_queue_oldest_pending_seconds{project=\"p\",type=\"T\"} "));

    // Resumed: the work is leased again.
    let (status, resumed) = post(s, "queues/T:resume").await;
    assert_eq!((status, counts(&resumed)), (200, ("RUNNING", "3", "1")));
    assert_eq!(s.lease_now("w", &["T"], 10).await.len(), 2);

    // The whole project: every type, and one type cannot be resumed alone.
    s.submit("p", json!({"type": "V", "operationId": "v"}))
        .await;
    let (status, whole) = post(s, "queues/-:pause").await;
    assert_eq!(status, 200, "{whole}");
    assert_eq!(whole["name"], "projects/p/queues/-");
    assert_eq!(counts(&whole), ("PAUSED", "2", "4"));
    assert!(s.lease_now("w", &["T", "U", "V"], 10).await.is_empty());
    let (status, error) = post(s, "queues/V:resume").await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["status"], "FAILED_PRECONDITION");
    assert_eq!(error["error"]["details"][0]["reason"], "PROJECT_PAUSED");
    let (status, _) = post(s, "queues/-:resume").await;
    assert_eq!(status, 200);
    assert_eq!(s.lease_now("w", &["V"], 10).await.len(), 1);

    // Errors: a verb no queue has, a method no queue takes.
    let (status, _) = post(s, "queues/T:drain").await;
    assert_eq!(status, 404);
    let (status, _) = s.request("DELETE", "/v1/projects/p/queues/T", None).await;
    assert_eq!(status, 405);
    let long = "X".repeat(300);
    let (status, error) = s
        .request("GET", &format!("/v1/projects/p/queues/{long}"), None)
        .await;
    assert_eq!(status, 400, "{error}");
}

#[tokio::test]
async fn counts_pause_and_resume_on_sqlite() {
    let s = TestServer::start().await;
    counts_pause_and_resume(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn counts_pause_and_resume_on_postgres() {
    let Some(schema) = Schema::create("queues").await else {
        return;
    };
    let s = server_with(schema.url(), |_| {}).await;
    counts_pause_and_resume(&s).await;
    finish(schema, [s]).await;
}

/// Three servers on one PostgreSQL store: a pause through one holds on the others at once,
/// and a resume through another wakes a worker waiting in a lease request on the third.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_holds_on_every_server() {
    let Some(schema) = Schema::create("queues_servers").await else {
        return;
    };
    let _turn = crate::postgres::several_servers().await;
    let servers = three_servers(schema.url(), |_| {}).await;
    let (a, b, c) = (&servers[0], &servers[1], &servers[2]);
    let (status, _) = post(a, "queues/T:pause").await;
    assert_eq!(status, 200);
    for i in 0..6 {
        servers[i % 3]
            .submit("p", json!({"type": "T", "operationId": format!("o{i}")}))
            .await;
    }
    for s in &servers {
        assert!(s.lease_now("w", &["T"], 10).await.is_empty());
        assert_eq!(counts(&queue(s, "queues/T").await), ("PAUSED", "6", "0"));
    }
    // A worker waits on c; the resume goes through b.
    let waiting = {
        let base = c.base.clone();
        tokio::spawn(async move {
            let client = longrun_client::Client::new(&base);
            let body = json!({"types": ["T"], "maxOperations": 6, "waitTimeout": "20s"});
            let started = Instant::now();
            let leased = client
                .call(http::Method::POST, "/v1/workers/waiter:lease", Some(&body))
                .await
                .unwrap();
            (started.elapsed(), leased)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let resumed_at = Instant::now();
    let (status, _) = post(b, "queues/T:resume").await;
    assert_eq!(status, 200);
    let (waited, leased) = waiting.await.unwrap();
    assert!(
        waited >= Duration::from_millis(500) && resumed_at.elapsed() < Duration::from_secs(2),
        "the waiting lease came back after {waited:?}"
    );
    assert!(!leased["leases"].as_array().unwrap().is_empty(), "{leased}");
    finish(schema, servers).await;
}
