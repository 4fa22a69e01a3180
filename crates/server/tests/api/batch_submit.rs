//! Batch submit (docs/operations.md#batch-submit): up to 1,000 submits in one durable
//! write, all or none, over REST and gRPC, on both stores: request-id dedup per item (within
//! the batch too), an invalid item named by its index, a taken id, the queue limit counted
//! over the whole batch, and the size bounds.

use crate::common::TestServer;
use crate::postgres::{finish, server_with};
use longrun_proto::longrun::v1 as pb;
use longrun_testkit::postgres::Schema;
use serde_json::{Value, json};

async fn batch(s: &TestServer, requests: Value) -> (u16, Value) {
    let body = json!({ "requests": requests }).to_string();
    s.request("POST", "/v1/projects/p/operations:batchSubmit", Some(&body))
        .await
}

async fn ids(s: &TestServer) -> Vec<String> {
    let (_, page) = s.request("GET", "/v1/projects/p/operations", None).await;
    let mut ids: Vec<String> = page["operations"]
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
        .collect();
    ids.sort();
    ids
}

async fn all_or_nothing(s: &TestServer) {
    let (status, answer) = batch(
        s,
        json!([
            {"type": "T", "operationId": "a", "requestId": "ra", "payload": {"n": 1}},
            {"type": "T", "operationId": "b", "priority": 7},
            {"type": "T", "operationId": "c", "requestId": "ra"},
        ]),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let ops = answer["operations"].as_array().unwrap();
    let names: Vec<&str> = ops.iter().map(|op| op["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "projects/p/operations/a",
            "projects/p/operations/b",
            "projects/p/operations/a"
        ]
    );
    assert_eq!(ops[1]["metadata"]["priority"], 7);
    assert_eq!(ops[0]["metadata"]["state"], "PENDING");
    let (_, got) = s.request("GET", "/v1/projects/p/operations/b", None).await;
    assert_eq!(got["name"], "projects/p/operations/b");

    // An invalid item: 400 naming its index, nothing written.
    let (status, error) = batch(
        s,
        json!([{"type": "T", "operationId": "d"}, {"type": "T", "priority": 99999}]),
    )
    .await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("requests[1]: priority must be between"),
        "{error}"
    );
    assert_eq!(
        error["error"]["details"][0]["reason"], "INVALID_SUBMISSION",
        "{error}"
    );
    assert_eq!(
        error["error"]["details"][0]["metadata"]["index"], "1",
        "{error}"
    );
    let (status, error) = batch(s, json!([{"type": "T"}, {"type": "T", "timeout": "soon"}])).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(
        error["error"]["details"][0]["metadata"]["index"], "1",
        "{error}"
    );
    // A taken operation id: 409, nothing written.
    let (status, error) = batch(
        s,
        json!([{"type": "T", "operationId": "e"}, {"type": "T", "operationId": "b"}]),
    )
    .await;
    assert_eq!(status, 409, "{error}");
    assert_eq!(ids(s).await, ["a", "b"]);

    // The queue limit (5) counts the whole batch: 2 queued, 4 more refused, 3 taken.
    let four: Vec<Value> = (0..4)
        .map(|i| json!({"type": "T", "operationId": format!("q{i}")}))
        .collect();
    let (status, error) = batch(s, json!(four)).await;
    assert_eq!(status, 429, "{error}");
    assert_eq!(ids(s).await, ["a", "b"]);
    let (status, _) = batch(s, json!(four[..3])).await;
    assert_eq!(status, 200);
    assert_eq!(ids(s).await, ["a", "b", "q0", "q1", "q2"]);

    // Sizes: none, and more than 1,000.
    let (status, error) = batch(s, json!([])).await;
    assert_eq!(status, 400, "{error}");
    let many: Vec<Value> = (0..1001).map(|_| json!({"type": "T"})).collect();
    let (status, error) = batch(s, json!(many)).await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1 to 1000"),
        "{error}"
    );
}

fn limited(c: &mut longrun_server::Config) {
    c.project_defaults.max_queued = 5;
}

#[tokio::test]
async fn all_or_nothing_on_sqlite() {
    let s = TestServer::with(limited).await;
    all_or_nothing(&s).await;
    s.stop().await;
}

#[tokio::test]
async fn all_or_nothing_on_postgres() {
    let Some(schema) = Schema::create("batch_submit").await else {
        return;
    };
    let s = server_with(schema.url(), limited).await;
    all_or_nothing(&s).await;
    finish(schema, [s]).await;
}

/// `longrun.v1.Submissions/BatchSubmitOperations`: the same write over gRPC.
#[tokio::test]
async fn over_grpc() {
    let s = TestServer::start().await;
    let channel = tonic::transport::Channel::from_shared(s.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = pb::submissions_client::SubmissionsClient::new(channel);
    let one = |id: &str| pb::SubmitOperationRequest {
        r#type: "T".into(),
        operation_id: id.into(),
        ..Default::default()
    };
    let answer = client
        .batch_submit_operations(pb::BatchSubmitOperationsRequest {
            parent: "projects/p".into(),
            requests: vec![one("g1"), one("g2")],
        })
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = answer
        .operations
        .iter()
        .map(|op| op.name.as_str())
        .collect();
    assert_eq!(
        names,
        ["projects/p/operations/g1", "projects/p/operations/g2"]
    );
    let elsewhere = pb::SubmitOperationRequest {
        parent: "projects/q".into(),
        ..one("g3")
    };
    let refused = client
        .batch_submit_operations(pb::BatchSubmitOperationsRequest {
            parent: "projects/p".into(),
            requests: vec![one("g4"), elsewhere],
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert!(
        refused.message().starts_with("requests[1]: "),
        "{refused:?}"
    );
    assert_eq!(ids(&s).await, ["g1", "g2"]);
    s.stop().await;
}
