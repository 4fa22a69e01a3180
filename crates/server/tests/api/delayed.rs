//! Delayed start (docs/operations.md#delayed-start): `scheduleTime` holds an operation back
//! until its time and a waiting lease gets it at once then; `startTimeout` ends one that
//! did not start in time, also across a restart; both are echoed (REST and gRPC), filtered,
//! and checked. On SQLite and on PostgreSQL.

use crate::common::TestServer;
use crate::postgres::{finish, server_with};
use longrun_proto::google::earthengine::v1 as ee;
use longrun_proto::google::longrunning as lro;
use longrun_proto::longrun::v1 as pb;
use longrun_server::Config;
use longrun_testkit::postgres::Schema;
use longrun_types::Timestamp;
use prost::Message;
use serde_json::{Value, json};
use std::time::Duration;

/// Where a test runs: a SQLite store in `dir`, or a PostgreSQL schema.
enum Store {
    Sqlite(tempfile::TempDir),
    Postgres(Box<Schema>),
}

impl Store {
    async fn sqlite() -> Store {
        Store::Sqlite(tempfile::tempdir().unwrap())
    }

    async fn postgres(tag: &str) -> Option<Store> {
        Some(Store::Postgres(Box::new(Schema::create(tag).await?)))
    }

    /// A server on this store (again and again: a restart keeps what the store holds).
    async fn server(&self, configure: impl FnOnce(&mut Config)) -> TestServer {
        match self {
            Store::Sqlite(dir) => {
                let data = dir.path().join("data");
                TestServer::with(|c| {
                    c.data_dir = data;
                    configure(c);
                })
                .await
            }
            Store::Postgres(schema) => server_with(schema.url(), configure).await,
        }
    }

    async fn finish(self, servers: impl IntoIterator<Item = TestServer>) {
        match self {
            Store::Sqlite(_) => {
                for s in servers {
                    s.stop().await;
                }
            }
            Store::Postgres(schema) => finish(*schema, servers).await,
        }
    }
}

fn millis(v: &Value) -> i64 {
    Timestamp::parse(v.as_str().unwrap()).unwrap().millis()
}

/// An operation scheduled 2 s ahead is not leased before its time, and a worker that
/// waits in a long lease gets it within 700 ms after.
async fn scheduled_work_starts_on_time(store: Store) {
    let s = store.server(|_| {}).await;
    let at = Timestamp::now().plus_millis(2_000);
    let op = s
        .submit(
            "p",
            json!({"type": "LATER", "operationId": "a", "scheduleTime": at.to_string()}),
        )
        .await;
    assert_eq!(op["metadata"]["scheduleTime"], at.to_string(), "{op}");
    assert_eq!(op["metadata"]["waitingReason"], "SCHEDULED", "{op}");
    // Nothing to lease yet.
    assert!(s.lease_now("w", &["LATER"], 10).await.is_empty());
    let (status, leased) = s
        .request(
            "POST",
            "/v1/workers/w:lease",
            Some(r#"{"types": ["LATER"], "waitTimeout": "30s"}"#),
        )
        .await;
    assert_eq!(status, 200, "{leased}");
    let got = Timestamp::now().millis();
    let op = &leased["leases"][0]["operation"];
    assert_eq!(op["name"], "projects/p/operations/a", "{leased}");
    let started = millis(&op["metadata"]["startTime"]);
    assert!(started >= at.millis(), "started {started}, scheduled {at}");
    // Woken by the server's own timer: well before the once-a-second recheck a shared
    // store's waiting leases make could have found it (with room for a loaded machine).
    assert!(
        got - at.millis() <= 700,
        "the waiting worker got it {} ms after its time",
        got - at.millis()
    );
    assert!(op["metadata"].get("waitingReason").is_none(), "{op}");
    store.finish([s]).await;
}

#[tokio::test]
async fn scheduled_work_starts_on_time_on_sqlite() {
    scheduled_work_starts_on_time(Store::sqlite().await).await;
}

#[tokio::test]
async fn scheduled_work_starts_on_time_on_postgres() {
    if let Some(store) = Store::postgres("scheduled").await {
        scheduled_work_starts_on_time(store).await;
    }
}

/// Waits for `name` to be done (at most 10 s).
async fn done(s: &TestServer, name: &str) -> Value {
    let (status, op) = s
        .request(
            "POST",
            &format!("/v1/{name}:wait"),
            Some(r#"{"timeout": "10s"}"#),
        )
        .await;
    assert_eq!(status, 200, "{op}");
    assert_eq!(op["done"], true, "{op}");
    op
}

fn assert_not_started_in_time(op: &Value) {
    assert_eq!(op["metadata"]["state"], "FAILED", "{op}");
    assert_eq!(
        op["error"],
        json!({"code": 4, "message": "not started within startTimeout"}),
        "{op}"
    );
    assert!(op["metadata"].get("startTime").is_none(), "{op}");
    assert!(op["metadata"].get("waitingReason").is_none(), "{op}");
}

/// An operation not started `startTimeout` after its creation (or its `scheduleTime`)
/// ends FAILED with code 4 and never runs.
async fn start_timeouts_end_work_never_started(store: Store) {
    let s = store.server(|_| {}).await;
    let op = s
        .submit(
            "p",
            json!({"type": "NOBODY", "operationId": "a", "startTimeout": "0.5s"}),
        )
        .await;
    assert_eq!(op["metadata"]["startTimeout"], "0.500s", "{op}");
    let at = Timestamp::now().plus_millis(500);
    let scheduled = json!({
        "type": "LATE", "operationId": "b", "scheduleTime": at.to_string(), "startTimeout": "1s",
    });
    s.submit("p", scheduled).await;
    let a = done(&s, "projects/p/operations/a").await;
    assert_not_started_in_time(&a);
    // The end counts from the scheduleTime: b is still PENDING 1 s after its creation.
    tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_millis(700)).await;
    let (_, b) = s.request("GET", "/v1/projects/p/operations/b", None).await;
    assert_eq!(b["metadata"]["state"], "PENDING", "{b}");
    let b = done(&s, "projects/p/operations/b").await;
    assert_not_started_in_time(&b);
    assert!(
        millis(&b["metadata"]["endTime"]) >= at.millis() + 1_000,
        "{b}"
    );
    // Never run: nothing left to lease.
    assert!(s.lease_now("w", &["LATE", "NOBODY"], 10).await.is_empty());
    store.finish([s]).await;
}

#[tokio::test]
async fn start_timeouts_end_work_never_started_on_sqlite() {
    start_timeouts_end_work_never_started(Store::sqlite().await).await;
}

#[tokio::test]
async fn start_timeouts_end_work_never_started_on_postgres() {
    if let Some(store) = Store::postgres("start_timeout").await {
        start_timeouts_end_work_never_started(store).await;
    }
}

/// The start deadline is a timer kept by the store: a server that was down when it
/// passed ends the operation once it starts again.
async fn start_timeouts_survive_a_restart(store: Store) {
    let s = store.server(|_| {}).await;
    s.submit(
        "p",
        json!({"type": "NOBODY", "operationId": "a", "startTimeout": "1s"}),
    )
    .await;
    s.stop().await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let s = store.server(|_| {}).await;
    let a = done(&s, "projects/p/operations/a").await;
    assert_not_started_in_time(&a);
    store.finish([s]).await;
}

#[tokio::test]
async fn start_timeouts_survive_a_restart_on_sqlite() {
    start_timeouts_survive_a_restart(Store::sqlite().await).await;
}

#[tokio::test]
async fn start_timeouts_survive_a_restart_on_postgres() {
    if let Some(store) = Store::postgres("start_restart").await {
        start_timeouts_survive_a_restart(store).await;
    }
}

/// Names of the operations of project p that `filter` lists.
pub(crate) async fn listed(s: &TestServer, filter: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let path = format!(
            "/v1/projects/p/operations?pageSize=1&filter={}&pageToken={token}",
            urlencode(filter)
        );
        let (status, page) = s.request("GET", &path, None).await;
        assert_eq!(status, 200, "{filter}: {page}");
        for op in page["operations"].as_array().into_iter().flatten() {
            names.push(
                op["name"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
            );
        }
        match page["nextPageToken"].as_str() {
            Some(next) => token = next.to_string(),
            None => return names,
        }
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `scheduleTime` and `startTimeout` are echoed in the metadata over REST and gRPC, and
/// filter lists.
async fn schedule_fields_are_echoed_and_filtered(store: Store) {
    let s = store.server(|_| {}).await;
    s.submit(
        "p",
        json!({"type": "T", "operationId": "a", "scheduleTime": "2099-01-02T03:04:05Z",
               "startTimeout": "90s"}),
    )
    .await;
    s.submit("p", json!({"type": "T", "operationId": "b"}))
        .await;
    let (_, a) = s.request("GET", "/v1/projects/p/operations/a", None).await;
    assert_eq!(a["metadata"]["scheduleTime"], "2099-01-02T03:04:05.000Z");
    assert_eq!(a["metadata"]["startTimeout"], "90s");
    let (_, b) = s.request("GET", "/v1/projects/p/operations/b", None).await;
    assert!(b["metadata"].get("scheduleTime").is_none(), "{b}");
    assert!(b["metadata"].get("startTimeout").is_none(), "{b}");
    for (filter, expected) in [
        ("metadata.scheduleTime:*", vec!["a"]),
        ("NOT metadata.scheduleTime:*", vec!["b"]),
        (
            "metadata.scheduleTime > \"2099-01-01T00:00:00Z\"",
            vec!["a"],
        ),
        ("metadata.scheduleTime < \"2099-01-01T00:00:00Z\"", vec![]),
        ("metadata.startTimeout = 90s", vec!["a"]),
        (
            "metadata.startTimeout > 1.5s AND metadata.type = T",
            vec!["a"],
        ),
    ] {
        assert_eq!(listed(&s, filter).await, expected, "{filter}");
    }

    // gRPC: the submit takes both, and the metadata carries them with the reason.
    let channel = tonic::transport::Channel::from_shared(s.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let op = pb::submissions_client::SubmissionsClient::new(channel.clone())
        .submit_operation(pb::SubmitOperationRequest {
            parent: "projects/p".into(),
            r#type: "T".into(),
            operation_id: "g".into(),
            schedule_time: Some(prost_types::Timestamp {
                seconds: 4_070_908_800,
                nanos: 0,
            }),
            start_timeout: Some(prost_types::Duration {
                seconds: 90,
                nanos: 500_000_000,
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let got = lro::operations_client::OperationsClient::new(channel)
        .get_operation(lro::GetOperationRequest {
            name: op.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    for op in [op, got] {
        let metadata = ee::OperationMetadata::decode(&*op.metadata.unwrap().value).unwrap();
        assert_eq!(
            metadata.schedule_time,
            Some(prost_types::Timestamp {
                seconds: 4_070_908_800,
                nanos: 0
            })
        );
        assert_eq!(
            metadata.start_timeout,
            Some(prost_types::Duration {
                seconds: 90,
                nanos: 500_000_000
            })
        );
        assert_eq!(
            metadata.waiting_reason(),
            ee::operation_metadata::WaitingReason::Scheduled
        );
    }
    let (_, g) = s.request("GET", "/v1/projects/p/operations/g", None).await;
    assert_eq!(g["metadata"]["startTimeout"], "90.500s", "{g}");
    store.finish([s]).await;
}

#[tokio::test]
async fn schedule_fields_are_echoed_and_filtered_on_sqlite() {
    schedule_fields_are_echoed_and_filtered(Store::sqlite().await).await;
}

#[tokio::test]
async fn schedule_fields_are_echoed_and_filtered_on_postgres() {
    if let Some(store) = Store::postgres("schedule_fields").await {
        schedule_fields_are_echoed_and_filtered(store).await;
    }
}

/// A `scheduleTime` that does not parse and a `startTimeout` that is negative, zero or not
/// a duration are 400 naming the field; nothing is submitted.
#[tokio::test]
async fn bad_schedule_values_are_400() {
    let s = TestServer::start().await;
    for (field, value) in [
        ("scheduleTime", json!("tomorrow")),
        ("scheduleTime", json!("2026-13-01T00:00:00Z")),
        ("startTimeout", json!("-1s")),
        ("startTimeout", json!("0s")),
        ("startTimeout", json!("5m")),
    ] {
        let body = json!({"type": "T", "operationId": "x", field: value});
        let (status, answer) = s
            .request(
                "POST",
                "/v1/projects/p/operations:submit",
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(status, 400, "{field} = {value}: {answer}");
        assert_eq!(answer["error"]["status"], "INVALID_ARGUMENT", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{field} = {value}: {message}");
    }
    let (status, _) = s.request("GET", "/v1/projects/p/operations/x", None).await;
    assert_eq!(status, 404);
    // Over gRPC too.
    let channel = tonic::transport::Channel::from_shared(s.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let error = pb::submissions_client::SubmissionsClient::new(channel)
        .submit_operation(pb::SubmitOperationRequest {
            parent: "projects/p".into(),
            r#type: "T".into(),
            start_timeout: Some(prost_types::Duration {
                seconds: -1,
                nanos: 0,
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(error.message().contains("startTimeout"), "{error:?}");
    s.stop().await;
}
