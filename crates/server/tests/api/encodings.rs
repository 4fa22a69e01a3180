//! One scenario, run over REST and over gRPC against fresh servers: every step's outcome
//! (states, errors with their codes and reasons, pagination) must be the same, so the two
//! encodings cannot drift apart.

use crate::common::TestServer;
use longrun_client::Client;
use longrun_proto::google::earthengine::v1 as ee;
use longrun_proto::google::longrunning as lro;
use longrun_proto::google::longrunning::operations_client::OperationsClient;
use longrun_proto::google::rpc;
use longrun_proto::json::to_value;
use longrun_proto::longrun::v1 as pb;
use longrun_proto::longrun::v1::submissions_client::SubmissionsClient;
use longrun_proto::longrun::v1::workers_client::WorkersClient;
use prost::Message;
use serde_json::{Value, json};
use tonic::transport::Channel;

/// A step's outcome, in a form both encodings map to.
type Outcome = Result<Value, (String, String)>;

enum Api {
    Rest(Box<Client>),
    Grpc(Channel),
}

/// The parts of an operation docs/operations.md fixes (times and ids aside).
fn summary(
    name: &str,
    done: bool,
    state: &str,
    op_type: &str,
    priority: i64,
    error: Option<i64>,
    response: Option<Value>,
) -> Value {
    json!({"name": name, "done": done, "state": state, "type": op_type, "priority": priority,
           "error": error, "response": response})
}

fn rest_summary(op: &Value) -> Value {
    let md = &op["metadata"];
    summary(
        op["name"].as_str().unwrap(),
        op["done"].as_bool().unwrap(),
        md["state"].as_str().unwrap(),
        md["type"].as_str().unwrap(),
        md["priority"].as_i64().unwrap(),
        op["error"]["code"].as_i64(),
        op.get("response").map(|r| r["value"].clone()),
    )
}

fn grpc_summary(op: &lro::Operation) -> Value {
    let md = ee::OperationMetadata::decode(op.metadata.as_ref().unwrap().value.as_slice()).unwrap();
    assert_eq!(
        op.metadata.as_ref().unwrap().type_url,
        "type.googleapis.com/google.earthengine.v1.OperationMetadata"
    );
    let (error, response) = match &op.result {
        Some(lro::operation::Result::Error(s)) => (Some(s.code as i64), None),
        Some(lro::operation::Result::Response(any)) => {
            assert_eq!(any.type_url, "type.googleapis.com/google.protobuf.Struct");
            let s = prost_types::Struct::decode(any.value.as_slice()).unwrap();
            (None, Some(longrun_proto::json::from_struct(&s)))
        }
        None => (None, None),
    };
    summary(
        &op.name,
        op.done,
        md.state().as_str_name(),
        &md.r#type,
        md.priority.into(),
        error,
        response,
    )
}

fn rest_error(e: longrun_client::Error) -> (String, String) {
    match e {
        longrun_client::Error::Api { body, .. } => (
            body["error"]["status"].as_str().unwrap().to_string(),
            body["error"]["details"][0]["reason"]
                .as_str()
                .unwrap()
                .to_string(),
        ),
        other => panic!("{other}"),
    }
}

fn grpc_error(s: tonic::Status) -> (String, String) {
    let details = rpc::Status::decode(s.details()).expect("grpc-status-details-bin");
    assert_eq!(details.code, s.code() as i32);
    let info = rpc::ErrorInfo::decode(details.details[0].value.as_slice()).unwrap();
    assert_eq!(info.domain, "longrun");
    let code = longrun_types::Code::from_i32(s.code() as i32).unwrap();
    (code.name().to_string(), info.reason)
}

fn duration(ms: u64) -> prost_types::Duration {
    prost_types::Duration::try_from(std::time::Duration::from_millis(ms)).unwrap()
}

impl Api {
    async fn submit(&self, body: Value) -> Outcome {
        match self {
            Api::Rest(c) => c
                .submit("p", &body)
                .await
                .map(|op| rest_summary(&op))
                .map_err(rest_error),
            Api::Grpc(ch) => {
                let text = |k: &str| body[k].as_str().unwrap_or_default().to_string();
                let request = pb::SubmitOperationRequest {
                    parent: "projects/p".into(),
                    r#type: text("type"),
                    description: text("description"),
                    priority: body["priority"].as_i64().map(|p| p as i32),
                    request_id: text("requestId"),
                    operation_id: text("operationId"),
                    payload: body.get("payload").map(to_value),
                    ..Default::default()
                };
                SubmissionsClient::new(ch.clone())
                    .submit_operation(request)
                    .await
                    .map(|r| grpc_summary(r.get_ref()))
                    .map_err(grpc_error)
            }
        }
    }

    async fn get(&self, name: &str) -> Outcome {
        match self {
            Api::Rest(c) => c
                .call(http::Method::GET, &format!("/v1/{name}"), None)
                .await
                .map(|op| rest_summary(&op))
                .map_err(rest_error),
            Api::Grpc(ch) => OperationsClient::new(ch.clone())
                .get_operation(lro::GetOperationRequest { name: name.into() })
                .await
                .map(|r| grpc_summary(r.get_ref()))
                .map_err(grpc_error),
        }
    }

    /// One page: the names on it and its token.
    async fn list(
        &self,
        filter: &str,
        page_size: i32,
        token: &str,
        partial: bool,
    ) -> Result<(Vec<String>, String), (String, String)> {
        match self {
            Api::Rest(c) => {
                let mut path = format!(
                    "/v1/projects/p/operations?pageSize={page_size}&pageToken={token}&filter={}",
                    form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
                );
                if partial {
                    path.push_str("&returnPartialSuccess=true");
                }
                let page = c
                    .call(http::Method::GET, &path, None)
                    .await
                    .map_err(rest_error)?;
                let names = page["operations"]
                    .as_array()
                    .map(|ops| {
                        ops.iter()
                            .map(|op| op["name"].as_str().unwrap().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                Ok((
                    names,
                    page["nextPageToken"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                ))
            }
            Api::Grpc(ch) => {
                let page = OperationsClient::new(ch.clone())
                    .list_operations(lro::ListOperationsRequest {
                        name: "projects/p".into(),
                        filter: filter.into(),
                        page_size,
                        page_token: token.into(),
                        return_partial_success: partial,
                    })
                    .await
                    .map_err(grpc_error)?
                    .into_inner();
                Ok((
                    page.operations.into_iter().map(|op| op.name).collect(),
                    page.next_page_token,
                ))
            }
        }
    }

    async fn list_all(&self, filter: &str, page_size: i32) -> Outcome {
        let (mut pages, mut token) = (Vec::new(), String::new());
        loop {
            let (names, next) = self.list(filter, page_size, &token, false).await?;
            pages.push(names);
            if next.is_empty() {
                return Ok(json!(pages));
            }
            token = next;
        }
    }

    async fn cancel(&self, name: &str) -> Outcome {
        match self {
            Api::Rest(c) => c
                .cancel(&longrun_types::Name::parse(name).unwrap())
                .await
                .map_err(rest_error),
            Api::Grpc(ch) => OperationsClient::new(ch.clone())
                .cancel_operation(lro::CancelOperationRequest { name: name.into() })
                .await
                .map(|_| json!({}))
                .map_err(grpc_error),
        }
    }

    async fn delete(&self, name: &str) -> Outcome {
        match self {
            Api::Rest(c) => c
                .call(http::Method::DELETE, &format!("/v1/{name}"), None)
                .await
                .map_err(rest_error),
            Api::Grpc(ch) => OperationsClient::new(ch.clone())
                .delete_operation(lro::DeleteOperationRequest { name: name.into() })
                .await
                .map(|_| json!({}))
                .map_err(grpc_error),
        }
    }

    async fn wait(&self, name: &str, ms: u64) -> Outcome {
        match self {
            Api::Rest(c) => c
                .call(
                    http::Method::POST,
                    &format!("/v1/{name}:wait"),
                    Some(&json!({"timeout": format!("{}s", ms as f64 / 1000.0)})),
                )
                .await
                .map(|op| rest_summary(&op))
                .map_err(rest_error),
            Api::Grpc(ch) => OperationsClient::new(ch.clone())
                .wait_operation(lro::WaitOperationRequest {
                    name: name.into(),
                    timeout: Some(duration(ms)),
                })
                .await
                .map(|r| grpc_summary(r.get_ref()))
                .map_err(grpc_error),
        }
    }

    /// Leases one operation of `op_type`: its name and lease id.
    async fn lease(&self, op_type: &str) -> Result<(String, String), (String, String)> {
        match self {
            Api::Rest(c) => {
                let body = json!({"types": [op_type], "waitTimeout": "0s"});
                let leased = c
                    .call(http::Method::POST, "/v1/workers/w:lease", Some(&body))
                    .await
                    .map_err(rest_error)?;
                let lease = &leased["leases"][0];
                Ok((
                    lease["operation"]["name"].as_str().unwrap().into(),
                    lease["leaseId"].as_str().unwrap().into(),
                ))
            }
            Api::Grpc(ch) => {
                let leased = WorkersClient::new(ch.clone())
                    .lease(pb::LeaseRequest {
                        worker: "w".into(),
                        types: vec![op_type.into()],
                        wait_timeout: Some(duration(0)),
                        ..Default::default()
                    })
                    .await
                    .map_err(grpc_error)?
                    .into_inner();
                let lease = &leased.leases[0];
                Ok((
                    lease.operation.as_ref().unwrap().name.clone(),
                    lease.lease_id.clone(),
                ))
            }
        }
    }

    async fn heartbeat(&self, name: &str, lease_id: &str, progress: f64) -> Outcome {
        match self {
            Api::Rest(c) => c
                .call(
                    http::Method::POST,
                    &format!("/v1/{name}:heartbeat"),
                    Some(&json!({"leaseId": lease_id, "progress": progress})),
                )
                .await
                .map(|b| json!({"cancelRequested": b["cancelRequested"]}))
                .map_err(rest_error),
            Api::Grpc(ch) => WorkersClient::new(ch.clone())
                .heartbeat(pb::HeartbeatRequest {
                    name: name.into(),
                    lease_id: lease_id.into(),
                    progress: Some(progress),
                    ..Default::default()
                })
                .await
                .map(|b| json!({"cancelRequested": b.get_ref().cancel_requested}))
                .map_err(grpc_error),
        }
    }

    async fn complete(
        &self,
        name: &str,
        lease_id: &str,
        result: Result<Value, (i32, &str)>,
    ) -> Outcome {
        match self {
            Api::Rest(c) => {
                let body = match &result {
                    Ok(response) => json!({"leaseId": lease_id, "response": response}),
                    Err((code, message)) => {
                        json!({"leaseId": lease_id, "error": {"code": code, "message": message}})
                    }
                };
                c.call(
                    http::Method::POST,
                    &format!("/v1/{name}:complete"),
                    Some(&body),
                )
                .await
                .map(|op| rest_summary(&op))
                .map_err(rest_error)
            }
            Api::Grpc(ch) => {
                let result = match result {
                    Ok(response) => pb::complete_request::Result::Response(to_value(&response)),
                    Err((code, message)) => pb::complete_request::Result::Error(rpc::Status {
                        code,
                        message: message.into(),
                        details: vec![],
                    }),
                };
                WorkersClient::new(ch.clone())
                    .complete(pb::CompleteRequest {
                        name: name.into(),
                        lease_id: lease_id.into(),
                        result: Some(result),
                    })
                    .await
                    .map(|r| grpc_summary(r.get_ref()))
                    .map_err(grpc_error)
            }
        }
    }
}

/// The scenario: every step's name and outcome, in order.
async fn scenario(api: &Api) -> Vec<(&'static str, Outcome)> {
    let mut log = Vec::new();
    let op = |id: &str| format!("projects/p/operations/{id}");
    for (id, priority) in [("a", 5), ("b", 50), ("c", 500), ("d", 5), ("e/x/1", 100)] {
        let body = json!({"type": "T", "operationId": id, "priority": priority, "description": id, "payload": {"n": 1}});
        log.push(("submit", api.submit(body).await));
        // Distinct create times, so that list order is the same on both servers.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    log.push((
        "submit taken id",
        api.submit(json!({"type": "T", "operationId": "a"})).await,
    ));
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let retry = json!({"type": "T", "operationId": "r", "requestId": "req-1"});
    log.push(("submit request id", api.submit(retry.clone()).await));
    log.push(("submit request id again", api.submit(retry).await));
    log.push((
        "submit bad priority",
        api.submit(json!({"type": "T", "priority": 10000})).await,
    ));
    log.push((
        "submit no type",
        api.submit(json!({"description": "x"})).await,
    ));
    // Ids HTTP clients would rewrite (dot segments), and text no store can index (U+0000).
    for (step, id) in [
        ("submit dot segment", "a/../b"),
        ("submit encoded dot segment", "x/%2E%2e"),
        ("submit lone dot", "."),
    ] {
        log.push((
            step,
            api.submit(json!({"type": "T", "operationId": id})).await,
        ));
    }
    log.push((
        "submit NUL description",
        api.submit(json!({"type": "T", "description": "a\u{0}b"}))
            .await,
    ));
    log.push((
        "submit NUL type",
        api.submit(json!({"type": "T\u{0}"})).await,
    ));
    log.push((
        "submit NUL request id",
        api.submit(json!({"type": "T", "requestId": "\u{0}"})).await,
    ));
    log.push(("get", api.get(&op("a")).await));
    log.push(("get dot segment", api.get(&op("a/%2E/b")).await));
    log.push(("get multi-segment", api.get(&op("e/x/1")).await));
    log.push(("get missing", api.get(&op("nope")).await));
    log.push(("get bad name", api.get("projects/p/operations/a//b").await));
    log.push(("list by 2", api.list_all("", 2).await));
    log.push((
        "list filtered",
        api.list_all("metadata.priority >= 50 AND done = false", 100)
            .await,
    ));
    log.push((
        "list bad filter",
        api.list_all("metadata.nope = 1", 100).await,
    ));
    log.push(("list negative size", api.list_all("", -1).await));
    log.push((
        "list NUL filter",
        api.list_all("metadata.description = \"\u{0}\"", 100).await,
    ));
    log.push((
        "list bad token",
        api.list("", 2, "garbage", false).await.map(|p| json!(p.0)),
    ));
    log.push((
        "list partial",
        api.list("", 2, "", true).await.map(|p| json!(p.0)),
    ));
    log.push(("wait pending", api.wait(&op("b"), 50).await));
    log.push(("cancel pending", api.cancel(&op("a")).await));
    log.push(("get cancelled", api.get(&op("a")).await));
    log.push(("cancel again", api.cancel(&op("a")).await));
    log.push(("delete not done", api.delete(&op("b")).await));
    log.push(("delete done", api.delete(&op("a")).await));
    log.push(("get deleted", api.get(&op("a")).await));
    log.push((
        "lease NUL type",
        api.lease("T\u{0}").await.map(|(name, _)| json!(name)),
    ));
    // Workers: highest priority first; fencing by lease id; results and failures.
    let (name, lease) = api.lease("T").await.unwrap();
    log.push(("leased", Ok(json!(name))));
    log.push(("heartbeat", api.heartbeat(&name, &lease, 0.5).await));
    log.push((
        "heartbeat stale lease",
        api.heartbeat(&name, "stale", 0.5).await,
    ));
    log.push((
        "heartbeat bad progress",
        api.heartbeat(&name, &lease, 2.0).await,
    ));
    log.push(("cancel running", api.cancel(&name).await));
    log.push((
        "heartbeat hears cancel",
        api.heartbeat(&name, &lease, 0.6).await,
    ));
    log.push((
        "complete anyway",
        api.complete(&name, &lease, Ok(json!({"rows": 3, "ok": true})))
            .await,
    ));
    log.push((
        "complete twice",
        api.complete(&name, &lease, Ok(json!({}))).await,
    ));
    let (name, lease) = api.lease("T").await.unwrap();
    log.push(("leased next", Ok(json!(name))));
    log.push((
        "complete bad code",
        api.complete(&name, &lease, Err((99, "?"))).await,
    ));
    log.push((
        "fail",
        api.complete(&name, &lease, Err((13, "disk full"))).await,
    ));
    log.push(("wait done", api.wait(&name, 1000).await));
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_and_grpc_give_the_same_outcomes() {
    let rest_server = TestServer::start().await;
    let grpc_server = TestServer::start().await;
    let rest = scenario(&Api::Rest(Box::new(Client::new(&rest_server.base)))).await;
    let channel = Channel::from_shared(grpc_server.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let grpc = scenario(&Api::Grpc(channel)).await;
    assert_eq!(rest.len(), grpc.len());
    for ((step, r), (_, g)) in rest.iter().zip(&grpc) {
        assert_eq!(r, g, "{step}: REST {r:?} / gRPC {g:?}");
    }
    // The scenario means something: spot checks of what both agreed on.
    let outcome = |step: &str| rest.iter().find(|(s, _)| *s == step).unwrap().1.clone();
    assert_eq!(
        outcome("get missing"),
        Err(("NOT_FOUND".into(), "OPERATION_NOT_FOUND".into()))
    );
    assert_eq!(
        outcome("delete not done").unwrap_err().0,
        "FAILED_PRECONDITION"
    );
    assert_eq!(outcome("list partial").unwrap_err().0, "UNIMPLEMENTED");
    for step in [
        "submit dot segment",
        "submit encoded dot segment",
        "submit lone dot",
        "get dot segment",
        "submit NUL description",
        "submit NUL type",
        "submit NUL request id",
        "list NUL filter",
        "lease NUL type",
    ] {
        assert_eq!(outcome(step).unwrap_err().0, "INVALID_ARGUMENT", "{step}");
    }
    assert_eq!(outcome("get cancelled").unwrap()["error"], 1);
    assert_eq!(outcome("list by 2").unwrap().as_array().unwrap().len(), 3);
    assert_eq!(outcome("heartbeat stale lease").unwrap_err().0, "ABORTED");
    assert_eq!(
        outcome("heartbeat hears cancel").unwrap()["cancelRequested"],
        true
    );
    let done = outcome("complete anyway").unwrap();
    assert_eq!(
        (done["state"].as_str(), done["response"].clone()),
        (Some("SUCCEEDED"), json!({"rows": 3, "ok": true}))
    );
    assert_eq!(outcome("wait done").unwrap()["error"], 13);
}
