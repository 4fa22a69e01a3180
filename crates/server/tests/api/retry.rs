//! Retry and bulk retry (docs/operations.md#retry, docs/operations.md#batch-retry): a done
//! operation runs again as a new one with what it was submitted with and `retryOf` naming
//! it; not done is 400; request ids deduplicate; `metadata.retryOf` filters; `:batchRetry`
//! retries every done match once, even across a restart in the middle; submit's permission;
//! gRPC. On SQLite and PostgreSQL.

use crate::common::{TestServer, envelope};
use longrun_testkit::postgres::Schema;
use longrun_types::Name;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn name(op: &Value) -> Name {
    Name::parse(op["name"].as_str().unwrap()).unwrap()
}

async fn get(s: &TestServer, name: &str) -> Value {
    let (status, op) = s.request("GET", &format!("/v1/{name}"), None).await;
    assert_eq!(status, 200, "{op}");
    op
}

async fn retry(s: &TestServer, name: &str, body: Value) -> (u16, Value) {
    s.request(
        "POST",
        &format!("/v1/{name}:retry"),
        Some(&body.to_string()),
    )
    .await
}

/// Completes a lease with `error` (a google.rpc.Status).
async fn fail(s: &TestServer, leased: &Value, error: Value) -> Value {
    let name = leased["operation"]["name"].as_str().unwrap();
    let body = json!({"leaseId": leased["leaseId"], "error": error});
    let path = format!("/v1/{name}:complete");
    let (status, op) = s.request("POST", &path, Some(&body.to_string())).await;
    assert_eq!(status, 200, "{op}");
    op
}

/// Leases the one PENDING operation of type `t`.
async fn lease_one(s: &TestServer, t: &str) -> Value {
    let leases = s.lease_now("w", &[t], 1).await;
    assert_eq!(leases.len(), 1, "one {t} to lease");
    leases.into_iter().next().unwrap()
}

/// The metadata a retry copies, and nothing that belongs to one run.
fn submitted(op: &Value) -> Value {
    let m = &op["metadata"];
    json!({
        "type": m["type"], "description": m["description"], "priority": m["priority"],
        "concurrencyKey": m["concurrencyKey"], "scriptUri": m["scriptUri"],
    })
}

/// Retries of a FAILED, a CANCELLED and a SUCCEEDED operation copy what each was submitted
/// with (type, payload, description, priority, key, script, attempts, timeout), start at
/// attempt 1 PENDING, name the original in `retryOf`, and leave the original as it was.
async fn retries_copy_the_submission(s: &TestServer) {
    let body = |t: &str, id: &str| {
        json!({
            "type": t, "operationId": id, "description": format!("run {id}"), "priority": 42,
            "payload": {"id": id, "n": [1, 2]}, "maxAttempts": 2, "timeout": "3600s",
            "concurrencyKey": "tenant-7", "scriptUri": "gs://s/x.js",
            "destinationUris": ["gs://b/x"],
        })
    };
    // FAILED after its two attempts, each a retryable error.
    s.submit("p", body("F", "failed")).await;
    let unavailable = json!({"code": 14, "message": "try again"});
    for _ in 0..2 {
        fail(s, &lease_one(s, "F").await, unavailable.clone()).await;
    }
    let failed = get(s, "projects/p/operations/failed").await;
    assert_eq!(failed["metadata"]["state"], "FAILED", "{failed}");
    s.submit("p", body("C", "cancelled")).await;
    s.request(
        "POST",
        "/v1/projects/p/operations/cancelled:cancel",
        Some("{}"),
    )
    .await;
    let cancelled = get(s, "projects/p/operations/cancelled").await;
    s.submit("p", body("S", "succeeded")).await;
    s.succeed(&lease_one(s, "S").await).await;
    let succeeded = get(s, "projects/p/operations/succeeded").await;
    assert_eq!(succeeded["metadata"]["state"], "SUCCEEDED");

    for (original, t) in [(&failed, "F"), (&cancelled, "C"), (&succeeded, "S")] {
        let original_name = original["name"].as_str().unwrap();
        let (status, again) = retry(s, original_name, json!({})).await;
        assert_eq!(status, 200, "{again}");
        assert_ne!(again["name"], original["name"]);
        assert_eq!(submitted(&again), submitted(original), "{again}");
        assert_eq!(again["metadata"]["retryOf"], original["name"]);
        assert_eq!(
            (
                &again["metadata"]["state"],
                &again["metadata"]["attempt"],
                &again["done"]
            ),
            (&json!("PENDING"), &json!(1), &json!(false))
        );
        assert!(
            again["metadata"].get("destinationUris").is_none(),
            "{again}"
        );
        assert!(again["metadata"].get("startTime").is_none(), "{again}");
        // The original is as it was.
        assert_eq!(&get(s, original_name).await, original);
        // Its payload, and its two attempts: a retryable error, then FAILED at the second.
        let leased = lease_one(s, t).await;
        assert_eq!(leased["operation"]["name"], again["name"]);
        assert_eq!(
            leased["payload"],
            json!({"id": original_name.rsplit('/').next().unwrap(), "n": [1, 2]})
        );
        let op = fail(s, &leased, unavailable.clone()).await;
        assert_eq!(op["metadata"]["state"], "PENDING", "{op}");
        let op = fail(s, &lease_one(s, t).await, unavailable.clone()).await;
        assert_eq!(
            (&op["metadata"]["state"], &op["metadata"]["attempt"]),
            (&json!("FAILED"), &json!(2)),
            "maxAttempts came along: {op}"
        );
    }

    // The timeout came along: a retry of an operation that timed out times out alike.
    let mut short = body("T", "timed");
    short["timeout"] = json!("1s");
    s.submit("p", short).await;
    let timed = s
        .client
        .wait(
            &Name::parse("projects/p/operations/timed").unwrap(),
            Some(Duration::from_secs(10)),
        )
        .await
        .unwrap();
    assert_eq!(timed["error"]["code"], 4, "{timed}");
    let (_, again) = retry(s, "projects/p/operations/timed", json!({})).await;
    let again = s
        .client
        .wait(&name(&again), Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(
        (&again["metadata"]["state"], &again["error"]["code"]),
        (&json!("FAILED"), &json!(4)),
        "{again}"
    );
}

/// Not done: 400 FAILED_PRECONDITION; unknown: 404; the body's fields checked; the same
/// requestId answers the same retry; operationId names it (taken: 409).
async fn retry_rules(s: &TestServer) {
    s.submit("p", json!({"type": "Q", "operationId": "queued"}))
        .await;
    s.submit("p", json!({"type": "R", "operationId": "running"}))
        .await;
    lease_one(s, "R").await;
    for id in ["queued", "running"] {
        let name = format!("projects/p/operations/{id}");
        let (status, answer) = retry(s, &name, json!({})).await;
        assert_eq!(
            (status, answer),
            (
                400,
                envelope(
                    400,
                    "FAILED_PRECONDITION",
                    "OPERATION_NOT_DONE",
                    &format!(
                        "operation {name} is not done; cancel it first or wait for it to finish"
                    ),
                    json!({"name": name}),
                )
            )
        );
    }
    let (status, answer) = retry(s, "projects/p/operations/nope", json!({})).await;
    assert_eq!(
        (status, &answer["error"]["status"]),
        (404, &json!("NOT_FOUND"))
    );
    s.request(
        "POST",
        "/v1/projects/p/operations/queued:cancel",
        Some("{}"),
    )
    .await;
    let (status, answer) = retry(s, "projects/p/operations/queued", json!({"other": 1})).await;
    assert_eq!(
        (status, &answer["error"]["status"]),
        (400, &json!("INVALID_ARGUMENT"))
    );
    let (status, answer) = s
        .request("POST", "/v1/projects/p/operations/queued:retry", None)
        .await;
    assert_eq!(status, 200, "an empty body is {{}}: {answer}");

    let original = Name::parse("projects/p/operations/queued").unwrap();
    let first = s
        .client
        .retry(&original, Some("again/1"), Some("req-1"))
        .await
        .unwrap();
    assert_eq!(first["name"], "projects/p/operations/again/1");
    for id in [None, Some("again/2")] {
        let repeated = s.client.retry(&original, id, Some("req-1")).await.unwrap();
        assert_eq!(repeated, first, "the same request id, the same retry");
    }
    let (status, answer) = retry(s, original.as_str(), json!({"operationId": "again/1"})).await;
    assert_eq!(
        (status, &answer["error"]["details"][0]["reason"]),
        (409, &json!("OPERATION_ALREADY_EXISTS"))
    );
    let snake = s
        .request(
            "POST",
            "/v1/projects/p/operations/queued:retry",
            Some(r#"{"operation_id": "again/3", "request_id": "req-3"}"#),
        )
        .await;
    assert_eq!(
        snake.1["name"], "projects/p/operations/again/3",
        "{}",
        snake.1
    );
}

/// `metadata.retryOf` filters, with the original's name as typed.
async fn retries_are_filtered(s: &TestServer) {
    s.submit("rf", json!({"type": "T", "operationId": "café"}))
        .await;
    s.request(
        "POST",
        "/v1/projects/rf/operations/caf%C3%A9:cancel",
        Some("{}"),
    )
    .await;
    let cafe = Name::parse("projects/rf/operations/caf%C3%A9").unwrap();
    let a = s.client.retry(&cafe, Some("a"), None).await.unwrap();
    let b = s.client.retry(&cafe, Some("b"), None).await.unwrap();
    let c = s.client.retry(&name(&a), Some("c"), None).await;
    assert!(c.is_err(), "a is not done");
    let names = |page: Value| -> Vec<String> {
        page["operations"]
            .as_array()
            .map(|ops| {
                ops.iter()
                    .map(|op| op["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let list = |filter: &'static str| {
        let client = s.client.clone();
        async move { names(client.list("rf", filter, 100, "").await.unwrap()) }
    };
    let both = vec![b["name"].as_str().unwrap(), a["name"].as_str().unwrap()];
    assert_eq!(
        list("metadata.retryOf = \"projects/rf/operations/café\"").await,
        both
    );
    assert_eq!(
        list("metadata.retryOf = \"projects/rf/operations/caf%c3%a9\"").await,
        both
    );
    assert_eq!(list("metadata.retryOf:*").await, both);
    assert_eq!(list("NOT metadata.retryOf:*").await, [cafe.as_str()]);
    assert_eq!(b["metadata"]["retryOf"], cafe.as_str());
}

async fn batch_retry(s: &TestServer, project: &str, filter: &str) -> Value {
    let job = s.client.batch_retry(project, filter).await.unwrap();
    assert_eq!(job["metadata"]["type"], "BATCH_RETRY", "{job}");
    job
}

async fn wait_done(s: &TestServer, op: &Value, within: Duration) -> Value {
    let done = s.client.wait(&name(op), Some(within)).await.unwrap();
    assert_eq!(done["done"], true, "{done}");
    done
}

/// How many operations of `project` match `filter`.
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

/// `:batchRetry` retries every done match once and counts the matches not done; bad
/// requests are 400.
async fn batch_retry_counts(s: &TestServer) {
    for id in ["d1", "d2", "d3", "p1", "p2"] {
        s.submit(
            "bc",
            json!({"type": "B", "operationId": id, "payload": {"id": id}}),
        )
        .await;
    }
    s.submit("bc", json!({"type": "OTHER", "operationId": "o"}))
        .await;
    s.request("POST", "/v1/projects/bc/operations/o:cancel", Some("{}"))
        .await;
    for id in ["d1", "d2"] {
        let path = format!("/v1/projects/bc/operations/{id}:cancel");
        s.request("POST", &path, Some("{}")).await;
    }
    // d3 ends SUCCEEDED, p1 runs, p2 waits.
    let leases = s.lease_now("w", &["B"], 2).await;
    let by_id = |id: &str| {
        leases
            .iter()
            .find(|l| l["operation"]["name"] == format!("projects/bc/operations/{id}"))
            .cloned()
            .unwrap()
    };
    s.succeed(&by_id("d3")).await;
    let _running = by_id("p1");

    let job = batch_retry(s, "bc", "metadata.type = \"B\"").await;
    let done = wait_done(s, &job, Duration::from_secs(30)).await;
    assert_eq!(done["metadata"]["state"], "SUCCEEDED", "{done}");
    assert_eq!(
        done["response"],
        json!({
            "@type": "type.googleapis.com/longrun.v1.BatchRetryResponse",
            "matchedCount": "5",
            "retriedCount": "3",
            "notDoneCount": "2",
        })
    );
    for id in ["d1", "d2", "d3"] {
        let filter = format!("metadata.retryOf = \"projects/bc/operations/{id}\"");
        let page = s.client.list("bc", &filter, 10, "").await.unwrap();
        let retries = page["operations"].as_array().unwrap();
        assert_eq!(retries.len(), 1, "{id}: {page}");
        assert_eq!(retries[0]["metadata"]["state"], "PENDING");
    }
    assert_eq!(count(s, "bc", "metadata.retryOf:*").await, 3);
    assert_eq!(
        count(s, "bc", "metadata.type = OTHER").await,
        1,
        "not a match"
    );

    for body in [
        json!({"filter": ""}),
        json!({}),
        json!({"filter": "done ="}),
        json!({"filter": "done = true", "x": 1}),
    ] {
        let (status, answer) = s
            .request(
                "POST",
                "/v1/projects/bc/operations:batchRetry",
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert_eq!(answer["error"]["status"], "INVALID_ARGUMENT");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_on_sqlite() {
    let s = TestServer::start().await;
    retries_copy_the_submission(&s).await;
    retry_rules(&s).await;
    retries_are_filtered(&s).await;
    batch_retry_counts(&s).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_on_postgres() {
    let Some(schema) = Schema::create("retry").await else {
        return;
    };
    let s = crate::postgres::server_on(schema.url()).await;
    retries_copy_the_submission(&s).await;
    retry_rules(&s).await;
    retries_are_filtered(&s).await;
    batch_retry_counts(&s).await;
    crate::postgres::finish(schema, [s]).await;
}

/// How many done operations the restart test retries.
const MANY: usize = 3000;

/// Queues `MANY` operations of type Q, 50 requests at a time, and cancels them all.
async fn many_done(s: &TestServer) {
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..50 {
        let client = s.client.clone();
        tasks.spawn(async move {
            for i in (worker..MANY).step_by(50) {
                let body = json!({"type": "Q", "operationId": format!("q{i}")});
                client.submit("p", &body).await.unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let job = s
        .client
        .batch_cancel("p", "metadata.type = Q")
        .await
        .unwrap();
    let done = wait_done(s, &job, Duration::from_secs(300)).await;
    assert_eq!(
        done["response"]["cancelledCount"],
        MANY.to_string(),
        "{done}"
    );
}

/// Stopped in the middle, a bulk retry runs again on the next start and finishes without
/// retrying anything twice: its request ids are derived from the job and each original.
async fn a_restart_in_the_middle_retries_each_once(start: impl AsyncFn() -> TestServer) {
    let s = start().await;
    many_done(&s).await;
    let job = batch_retry(&s, "p", "metadata.type = Q AND done = true").await;
    // Stop once the job has retried some.
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&s, "p", "metadata.retryOf:*").await == 0 {
        assert!(Instant::now() < deadline, "the job never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.stop().await;
    let s = start().await;
    let first_run = count(&s, "p", "metadata.retryOf:*").await;
    eprintln!("retried by the first run: {first_run} of {MANY}");
    assert!(first_run < MANY, "the stop came in the middle of the job");
    let done = wait_done(&s, &job, Duration::from_secs(300)).await;
    assert_eq!(done["metadata"]["state"], "SUCCEEDED", "{done}");
    assert_eq!(done["metadata"]["attempt"], 2, "{done}");
    assert_eq!(
        (
            &done["response"]["matchedCount"],
            &done["response"]["retriedCount"]
        ),
        (&json!(MANY.to_string()), &json!(MANY.to_string())),
        "{done}"
    );
    assert_eq!(
        count(&s, "p", "metadata.retryOf:*").await,
        MANY,
        "none twice"
    );
    // Each original has its one retry.
    for i in [0, MANY / 2, MANY - 1] {
        let filter = format!("metadata.retryOf = \"projects/p/operations/q{i}\"");
        assert_eq!(count(&s, "p", &filter).await, 1, "{filter}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_retries_each_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    a_restart_in_the_middle_retries_each_once(async || {
        TestServer::with(|c| {
            c.data_dir = data.clone();
            c.project_defaults.max_queued = 20_000;
        })
        .await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_retries_each_once_on_postgres() {
    let Some(schema) = Schema::create("bulkretry").await else {
        return;
    };
    let url = schema.url().to_string();
    a_restart_in_the_middle_retries_each_once(async || {
        crate::postgres::server_with(&url, |c| c.project_defaults.max_queued = 20_000).await
    })
    .await;
    crate::postgres::finish(schema, Vec::<TestServer>::new()).await;
}

/// Retry and batchRetry need submit's permission: a viewer is refused both, before the
/// operation is looked up; a writer may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_needs_the_permission_of_submit() {
    let (server, writer, viewer) = crate::auth::writer_and_viewer().await;
    let op = writer
        .submit("p", &json!({"type": "T", "operationId": "x"}))
        .await
        .unwrap();
    writer.cancel(&name(&op)).await.unwrap();
    let status = |r: Result<Value, longrun_client::Error>| match r {
        Ok(_) => 200,
        Err(longrun_client::Error::Api { http_status, .. }) => http_status,
        Err(e) => panic!("{e}"),
    };
    let missing = Name::parse("projects/p/operations/missing").unwrap();
    assert_eq!(status(viewer.retry(&name(&op), None, None).await), 403);
    assert_eq!(status(viewer.retry(&missing, None, None).await), 403);
    assert_eq!(status(viewer.batch_retry("p", "done = true").await), 403);
    assert_eq!(status(writer.retry(&name(&op), None, None).await), 200);
    assert_eq!(status(writer.batch_retry("p", "done = true").await), 200);
    server.stop().await;
}

/// Over gRPC: RetryOperation (retry_of in the metadata, FAILED_PRECONDITION when not
/// done) and BatchRetryOperations, whose response is a BatchRetryResponse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_over_grpc() {
    use longrun_proto::google::earthengine::v1::OperationMetadata;
    use longrun_proto::google::longrunning::operation::Result as Done;
    use longrun_proto::google::longrunning::operations_client::OperationsClient;
    use longrun_proto::google::longrunning::{GetOperationRequest, Operation};
    use longrun_proto::longrun::v1 as pb;
    use longrun_proto::longrun::v1::submissions_client::SubmissionsClient;
    use prost::Message;
    let s = TestServer::start().await;
    let channel = tonic::transport::Channel::from_shared(s.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut submissions = SubmissionsClient::new(channel.clone());
    let metadata = |op: &Operation| {
        OperationMetadata::decode(op.metadata.as_ref().unwrap().value.as_slice()).unwrap()
    };
    s.submit("p", json!({"type": "T", "operationId": "a", "priority": 5}))
        .await;
    let request = |id: &str| pb::RetryOperationRequest {
        name: "projects/p/operations/a".into(),
        operation_id: id.into(),
        request_id: "r".into(),
    };
    let refused = submissions.retry_operation(request("b")).await.unwrap_err();
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );
    s.request("POST", "/v1/projects/p/operations/a:cancel", Some("{}"))
        .await;
    let retried = submissions
        .retry_operation(request("b"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.name, "projects/p/operations/b");
    let m = metadata(&retried);
    assert_eq!(
        (m.retry_of.as_str(), m.priority),
        ("projects/p/operations/a", 5)
    );
    // The same request id, the same retry; REST sees it too.
    let again = submissions
        .retry_operation(request(""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.name, retried.name);
    assert_eq!(
        get(&s, "projects/p/operations/b").await["metadata"]["retryOf"],
        "projects/p/operations/a"
    );
    let refused = submissions
        .batch_retry_operations(pb::BatchRetryOperationsRequest {
            parent: "projects/p".into(),
            filter: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let job = submissions
        .batch_retry_operations(pb::BatchRetryOperationsRequest {
            parent: "projects/p".into(),
            filter: "metadata.type = T".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(metadata(&job).r#type, "BATCH_RETRY");
    s.client
        .wait(
            &Name::parse(&job.name).unwrap(),
            Some(Duration::from_secs(30)),
        )
        .await
        .unwrap();
    let done = OperationsClient::new(channel)
        .get_operation(GetOperationRequest { name: job.name })
        .await
        .unwrap()
        .into_inner();
    let Some(Done::Response(any)) = done.result else {
        panic!("{done:?}")
    };
    assert_eq!(
        any.type_url,
        "type.googleapis.com/longrun.v1.BatchRetryResponse"
    );
    let counts = pb::BatchRetryResponse::decode(any.value.as_slice()).unwrap();
    assert_eq!(
        (
            counts.matched_count,
            counts.retried_count,
            counts.not_done_count
        ),
        (2, 1, 1),
        "a retried, b not done"
    );
    s.stop().await;
}
