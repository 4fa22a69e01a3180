//! Why work waits (docs/operations.md#why-work-waits): `metadata.waitingReason` on every
//! PENDING operation, over get, list, wait, gRPC and the watch stream, and the filter on it,
//! with page tokens that neither skip nor repeat.

use crate::common::TestServer;
use crate::delayed::listed;
use crate::postgres::{finish, server_with};
use longrun_proto::google::earthengine::v1 as ee;
use longrun_proto::google::longrunning as lro;
use longrun_server::config::TaskType;
use longrun_testkit::postgres::Schema;
use prost::Message;
use serde_json::{Value, json};
use std::time::Duration;

async fn reason(s: &TestServer, id: &str) -> Value {
    let (status, op) = s
        .request("GET", &format!("/v1/projects/p/operations/{id}"), None)
        .await;
    assert_eq!(status, 200, "{op}");
    op["metadata"]
        .get("waitingReason")
        .cloned()
        .unwrap_or(Value::Null)
}

/// A lease request of `types` that takes nothing: the types count as asked for.
async fn ask(s: &TestServer, types: &[&str]) {
    let body = json!({"types": types, "waitTimeout": "0s", "maxOperations": 1});
    let (status, _) = s
        .request("POST", "/v1/workers/asker:lease", Some(&body.to_string()))
        .await;
    assert_eq!(status, 200);
}

/// Every reason a server gives, each where its rule holds, listed by the filter on it.
async fn every_reason_is_given_and_filtered(s: &TestServer) {
    // SCHEDULED: its time is to come.
    let later = "2099-01-01T00:00:00Z";
    s.submit(
        "p",
        json!({"type": "T", "operationId": "scheduled", "scheduleTime": later}),
    )
    .await;
    // NO_WORKER: nobody asked for its type.
    let op = s
        .submit("p", json!({"type": "NOBODY", "operationId": "unasked"}))
        .await;
    assert_eq!(op["metadata"]["waitingReason"], "NO_WORKER", "{op}");
    // PROJECT_RUNNING_LIMIT: the project runs 3 already (max_running = 3).
    for id in ["run1", "run2", "run3", "held"] {
        s.submit("p", json!({"type": "T", "operationId": id})).await;
    }
    let leased = s.lease_now("w", &["T"], 3).await;
    assert_eq!(leased.len(), 3);
    // KEY_LIMIT and EXPORT_LIMIT in project q, at no running limit yet (one runs there).
    for (id, body) in [
        ("k1", json!({"type": "KEYED", "concurrencyKey": "k"})),
        ("k2", json!({"type": "KEYED", "concurrencyKey": "k"})),
        ("e1", json!({"type": "EXPORT_IMAGE"})),
    ] {
        let mut body = body;
        body["operationId"] = json!(id);
        s.submit("q", body).await;
    }
    let first = s.lease_now("w", &["KEYED"], 1).await;
    assert_eq!(first.len(), 1);
    // QUEUED: asked for, under no limit, other work ahead (nobody leases it now).
    ask(s, &["QUEUED_T"]).await;
    s.submit("p2", json!({"type": "QUEUED_T", "operationId": "queued"}))
        .await;

    assert_eq!(reason(s, "scheduled").await, "SCHEDULED");
    assert_eq!(reason(s, "unasked").await, "NO_WORKER");
    assert_eq!(reason(s, "held").await, "PROJECT_RUNNING_LIMIT");
    let get = |project: &str, id: &str| format!("/v1/projects/{project}/operations/{id}");
    let (_, op) = s.request("GET", &get("p2", "queued"), None).await;
    assert_eq!(op["metadata"]["waitingReason"], "QUEUED", "{op}");
    let waiting_in_q = if first[0]["operation"]["name"] == "projects/q/operations/k1" {
        "k2"
    } else {
        "k1"
    };
    let (_, op) = s.request("GET", &get("q", waiting_in_q), None).await;
    assert_eq!(op["metadata"]["waitingReason"], "KEY_LIMIT", "{op}");
    // Running operations wait for nothing.
    let running = leased[0]["operation"]["name"].as_str().unwrap();
    let (_, op) = s.request("GET", &format!("/v1/{running}"), None).await;
    assert!(op["metadata"].get("waitingReason").is_none(), "{op}");

    // EXPORT_LIMIT: the export cap of q is 1 and one export runs.
    s.submit("q", json!({"type": "EXPORT_IMAGE", "operationId": "e2"}))
        .await;
    assert_eq!(s.lease_now("w", &["EXPORT_IMAGE"], 5).await.len(), 1);
    let (_, op) = s.request("GET", &get("q", "e2"), None).await;
    assert_eq!(op["metadata"]["waitingReason"], "EXPORT_LIMIT", "{op}");

    // Filtered, page by page.
    for (filter, expected) in [
        ("metadata.waitingReason = SCHEDULED", vec!["scheduled"]),
        ("metadata.waitingReason = NO_WORKER", vec!["unasked"]),
        (
            "metadata.waitingReason = \"PROJECT_RUNNING_LIMIT\"",
            vec!["held"],
        ),
        (
            "metadata.waitingReason = SCHEDULED OR metadata.waitingReason = NO_WORKER",
            vec!["unasked", "scheduled"],
        ),
        (
            "metadata.waitingReason:* AND metadata.type = T",
            vec!["held", "scheduled"],
        ),
        ("NOT metadata.waitingReason:* AND metadata.type = T", {
            let mut ran: Vec<&str> = leased
                .iter()
                .map(|l| {
                    l["operation"]["name"]
                        .as_str()
                        .unwrap()
                        .rsplit('/')
                        .next()
                        .unwrap()
                })
                .collect();
            ran.sort_by(|a, b| b.cmp(a));
            ran
        }),
    ] {
        assert_eq!(listed(s, filter).await, expected, "{filter}");
    }
    let in_q = |filter: &str| {
        let path = format!(
            "/v1/projects/q/operations?filter={}",
            filter.replace(' ', "%20").replace('=', "%3D")
        );
        async move {
            let (status, page) = s.request("GET", &path, None).await;
            assert_eq!(status, 200, "{page}");
            page["operations"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|op| {
                    op["name"]
                        .as_str()
                        .unwrap()
                        .rsplit('/')
                        .next()
                        .unwrap()
                        .to_string()
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        in_q("metadata.waitingReason = KEY_LIMIT").await,
        [waiting_in_q]
    );
    assert_eq!(in_q("metadata.waitingReason = EXPORT_LIMIT").await, ["e2"]);
    let (_, page) = s
        .request(
            "GET",
            "/v1/projects/p2/operations?filter=metadata.waitingReason%20%3D%20QUEUED",
            None,
        )
        .await;
    assert_eq!(
        page["operations"][0]["name"],
        "projects/p2/operations/queued"
    );
    // A reason that does not exist is a filter error.
    let (status, answer) = s
        .request(
            "GET",
            "/v1/projects/p/operations?filter=metadata.waitingReason%20%3D%20LATER",
            None,
        )
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("waiting reason")
    );
}

fn limited(c: &mut longrun_server::Config) {
    c.project_defaults.max_running = 3;
    c.projects.plan_max_concurrent_exports = 1;
    c.task_types.push(TaskType {
        key_concurrency: 1,
        ..TaskType::new("KEYED")
    });
}

#[tokio::test]
async fn every_reason_is_given_and_filtered_on_sqlite() {
    let s = TestServer::with(limited).await;
    every_reason_is_given_and_filtered(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn every_reason_is_given_and_filtered_on_postgres() {
    let Some(schema) = Schema::create("waiting").await else {
        return;
    };
    let s = server_with(schema.url(), limited).await;
    every_reason_is_given_and_filtered(&s).await;
    finish(schema, [s]).await;
}

/// The reason is served by wait, over gRPC and in the watch stream (snapshot and live).
#[tokio::test]
async fn reasons_are_served_everywhere() {
    let s = TestServer::start().await;
    s.submit("p", json!({"type": "NOBODY", "operationId": "a"}))
        .await;
    let (_, op) = s
        .request(
            "POST",
            "/v1/projects/p/operations/a:wait",
            Some(r#"{"timeout": "0.1s"}"#),
        )
        .await;
    assert_eq!(op["metadata"]["waitingReason"], "NO_WORKER", "{op}");

    let channel = tonic::transport::Channel::from_shared(s.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut operations = lro::operations_client::OperationsClient::new(channel);
    let op = operations
        .get_operation(lro::GetOperationRequest {
            name: "projects/p/operations/a".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let metadata = ee::OperationMetadata::decode(&*op.metadata.unwrap().value).unwrap();
    assert_eq!(
        metadata.waiting_reason(),
        ee::operation_metadata::WaitingReason::NoWorker
    );
    let page = operations
        .list_operations(lro::ListOperationsRequest {
            name: "projects/p".into(),
            filter: "metadata.waitingReason = NO_WORKER".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.operations.len(), 1);

    let mut w = s
        .client
        .watch("p", "metadata.waitingReason = NO_WORKER", None, "")
        .await
        .unwrap();
    let first = next(&mut w).await;
    assert_eq!(first.event, "operation");
    assert_eq!(first.json()["metadata"]["waitingReason"], "NO_WORKER");
    assert_eq!(next(&mut w).await.event, "synced");
    s.submit("p", json!({"type": "NOBODY", "operationId": "b"}))
        .await;
    let live = next(&mut w).await;
    assert_eq!(live.json()["name"], "projects/p/operations/b");
    assert_eq!(live.json()["metadata"]["waitingReason"], "NO_WORKER");
    s.stop().await;
}

async fn next(w: &mut longrun_client::Watcher) -> longrun_client::Event {
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

/// A filter on the reason keeps page tokens exact: pages of one never skip or repeat, with
/// other operations between those that match.
#[tokio::test]
async fn reason_filters_page_without_skips_or_repeats() {
    let s = TestServer::start().await;
    ask(&s, &["ASKED"]).await;
    let mut expected = Vec::new();
    for i in 0..12 {
        let (op_type, id) = if i % 3 == 0 {
            ("ASKED", format!("asked{i:02}"))
        } else {
            ("NOBODY", format!("unasked{i:02}"))
        };
        s.submit("p", json!({"type": op_type, "operationId": id}))
            .await;
        if op_type == "ASKED" {
            expected.push(id);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    expected.reverse();
    assert_eq!(
        listed(&s, "metadata.waitingReason = QUEUED").await,
        expected
    );
    s.stop().await;
}
