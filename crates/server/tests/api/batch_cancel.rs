//! Bulk cancel (docs/watch.md#bulk-cancel): `:batchCancel {filter}` returns a `BATCH_CANCEL`
//! operation that cancels every match, with counts; bad requests; 10,000 queued
//! operations (timed); a restart in the middle of the job.

use crate::common::TestServer;
use longrun_types::Name;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn batch_cancel(s: &TestServer, project: &str, filter: &str) -> Value {
    let path = format!("/v1/projects/{project}/operations:batchCancel");
    let (status, op) = s
        .request("POST", &path, Some(&json!({"filter": filter}).to_string()))
        .await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["metadata"]["type"], "BATCH_CANCEL");
    op
}

async fn wait_done(s: &TestServer, op: &Value, within: Duration) -> Value {
    let name = Name::parse(op["name"].as_str().unwrap()).unwrap();
    let done = s.client.wait(&name, Some(within)).await.unwrap();
    assert_eq!(done["done"], true, "{done}");
    done
}

async fn state(s: &TestServer, project: &str, id: &str) -> String {
    let (_, op) = s
        .request(
            "GET",
            &format!("/v1/projects/{project}/operations/{id}"),
            None,
        )
        .await;
    op["metadata"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Submits `n` operations of type `t`, 50 requests at a time.
async fn queue(s: &TestServer, project: &str, t: &str, n: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..50 {
        let client = s.client.clone();
        let (project, t) = (project.to_string(), t.to_string());
        tasks.spawn(async move {
            for i in (worker..n).step_by(50) {
                let body = json!({"type": t, "operationId": format!("q{i}")});
                client.submit(&project, &body).await.unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
}

/// How many operations of the project match `filter`.
async fn count(s: &TestServer, project: &str, filter: &str) -> usize {
    let (mut n, mut token) = (0, String::new());
    loop {
        let page = s.client.list(project, filter, 1000, &token).await.unwrap();
        n += page["operations"].as_array().map_or(0, Vec::len);
        match page["nextPageToken"].as_str() {
            Some(next) => token = next.to_string(),
            None => return n,
        }
    }
}

#[tokio::test]
async fn cancels_every_match_and_counts() {
    let s = TestServer::start().await;
    for id in ["a", "b", "c", "d"] {
        s.submit("p", json!({"type": "T", "operationId": id})).await;
    }
    s.submit("p", json!({"type": "U", "operationId": "e"}))
        .await;
    s.request("POST", "/v1/projects/p/operations/c:cancel", Some("{}"))
        .await;
    // b runs: its cancel is requested, it becomes CANCELLING and counts as cancelled.
    let (_, leased) = s
        .request(
            "POST",
            "/v1/workers/w:lease",
            Some(r#"{"types": ["T"], "waitTimeout": "0s", "maxOperations": 1}"#),
        )
        .await;
    let running = leased["leases"][0]["operation"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let running_id = running.rsplit('/').next().unwrap().to_string();

    let job = batch_cancel(&s, "p", "metadata.type = \"T\"").await;
    let done = wait_done(&s, &job, Duration::from_secs(30)).await;
    assert_eq!(done["metadata"]["state"], "SUCCEEDED", "{done}");
    assert_eq!(
        done["response"],
        json!({
            "@type": "type.googleapis.com/longrun.v1.BatchCancelResponse",
            "matchedCount": "4",
            "cancelledCount": "3",
            "alreadyDoneCount": "1",
        })
    );
    for id in ["a", "b", "c", "d"] {
        let expected = if id == running_id {
            "CANCELLING"
        } else {
            "CANCELLED"
        };
        assert_eq!(state(&s, "p", id).await, expected, "{id}");
    }
    assert_eq!(state(&s, "p", "e").await, "PENDING");
    // The cancels name the job's caller and the job.
    let pending_id = if running_id == "d" { "a" } else { "d" };
    let path = format!("/v1/projects/p/operations/{pending_id}");
    let (_, op) = s.request("GET", &path, None).await;
    let principal = op["error"]["details"][0]["metadata"]["principal"]
        .as_str()
        .unwrap_or_else(|| panic!("{op}"));
    assert!(
        principal.contains(job["name"].as_str().unwrap()),
        "{principal}"
    );

    // A filter matching the job itself leaves it alone; nothing left to cancel.
    let again = batch_cancel(&s, "p", "done = false AND metadata.type != \"U\"").await;
    let again = wait_done(&s, &again, Duration::from_secs(30)).await;
    assert_eq!(again["metadata"]["state"], "SUCCEEDED", "{again}");
    assert_eq!(again["response"]["matchedCount"], "1", "{again}");
    s.stop().await;
}

#[tokio::test]
async fn bad_requests_are_400() {
    let s = TestServer::start().await;
    for body in [
        json!({"filter": ""}),
        json!({}),
        json!({"filter": "state = "}),
        json!({"filter": "done = true", "other": 1}),
    ] {
        let (status, answer) = s
            .request(
                "POST",
                "/v1/projects/p/operations:batchCancel",
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["status"], "INVALID_ARGUMENT");
    }
    let (status, _) = s
        .request("GET", "/v1/projects/p/operations:batchCancel", None)
        .await;
    assert_eq!(
        status, 404,
        "GET keeps the colon in the id: no such operation"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_queued_operations() {
    let s = TestServer::with(|c| c.project_defaults.max_queued = 20_000).await;
    queue(&s, "p", "Q", 10_000).await;
    let started = Instant::now();
    let job = batch_cancel(&s, "p", "metadata.type = \"Q\"").await;
    let done = wait_done(&s, &job, Duration::from_secs(300)).await;
    let took = started.elapsed();
    eprintln!("bulk cancel of 10,000 queued operations took {took:?}");
    assert_eq!(done["metadata"]["state"], "SUCCEEDED", "{done}");
    assert_eq!(done["response"]["matchedCount"], "10000");
    assert_eq!(done["response"]["cancelledCount"], "10000");
    assert_eq!(count(&s, "p", "metadata.state = CANCELLED").await, 10_000);
    s.stop().await;
}

/// Stopped in the middle, the job runs again on the next start and finishes: every match
/// ends CANCELLED and the counts include what the first run cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_finishes_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let configure = |c: &mut longrun_server::Config| {
        c.data_dir = data.clone();
        c.project_defaults.max_queued = 20_000;
    };
    let s = TestServer::with(configure).await;
    queue(&s, "p", "Q", 10_000).await;
    let job = batch_cancel(&s, "p", "metadata.type = \"Q\"").await;
    // Stop once the job has cancelled some but not all.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = s
            .client
            .list("p", "metadata.state = CANCELLED", 1, "")
            .await
            .unwrap();
        if page["operations"].as_array().is_some_and(|o| !o.is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.stop().await;
    let s = TestServer::with(configure).await;
    let remaining = count(&s, "p", "metadata.type = \"Q\" AND done = false").await;
    eprintln!("left for the second run: {remaining} of 10,000");
    assert!(remaining > 0, "the stop came in the middle of the job");
    let done = wait_done(&s, &job, Duration::from_secs(300)).await;
    assert_eq!(done["metadata"]["state"], "SUCCEEDED", "{done}");
    assert_eq!(done["metadata"]["attempt"], 2, "{done}");
    assert_eq!(done["response"]["matchedCount"], "10000", "{done}");
    assert_eq!(done["response"]["cancelledCount"], "10000", "{done}");
    assert_eq!(count(&s, "p", "metadata.state = CANCELLED").await, 10_000);
    s.stop().await;
}
