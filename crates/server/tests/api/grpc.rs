//! What gRPC has beyond the shared scenario (encodings.rs): the health service, server
//! reflection, WaitOperation within the caller's deadline, Any-typed metadata and response.

use crate::common::TestServer;
use longrun_proto::google::longrunning as lro;
use longrun_proto::google::longrunning::operations_client::OperationsClient;
use serde_json::json;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

async fn channel(s: &TestServer) -> Channel {
    Channel::from_shared(s.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A `Work` stream on `s`: where to send calls, and the answers.
async fn work_stream(
    s: &TestServer,
) -> (
    tokio::sync::mpsc::Sender<longrun_proto::longrun::v1::WorkRequest>,
    tonic::Streaming<longrun_proto::longrun::v1::WorkResponse>,
) {
    use longrun_proto::longrun::v1::workers_client::WorkersClient;
    let (calls, outbound) = tokio::sync::mpsc::channel(8);
    let inbound = WorkersClient::new(channel(s).await)
        .work(tokio_stream::wrappers::ReceiverStream::new(outbound))
        .await
        .unwrap()
        .into_inner();
    (calls, inbound)
}

#[tokio::test]
async fn health_and_reflection() {
    let s = TestServer::start().await;
    let mut health = HealthClient::new(channel(&s).await);
    for service in ["", "google.longrunning.Operations", "longrun.v1.Workers"] {
        let answer = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap();
        assert_eq!(
            answer.get_ref().status(),
            ServingStatus::Serving,
            "{service:?}"
        );
    }
    let unknown = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(channel(&s).await)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("{answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for wanted in [
        "google.longrunning.Operations",
        "longrun.v1.Submissions",
        "longrun.v1.Workers",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} not in {names:?}"
        );
    }
}

#[tokio::test]
async fn wait_answers_before_the_callers_deadline() {
    let s = TestServer::start().await;
    s.submit("p", json!({"type": "T", "operationId": "w"}))
        .await;
    let mut operations = OperationsClient::new(channel(&s).await);
    let mut request = tonic::Request::new(lro::WaitOperationRequest {
        name: "projects/p/operations/w".into(),
        timeout: Some(prost_types::Duration {
            seconds: 30,
            nanos: 0,
        }),
    });
    request.set_timeout(Duration::from_secs(2));
    let started = Instant::now();
    let op = operations
        .wait_operation(request)
        .await
        .unwrap()
        .into_inner();
    let took = started.elapsed();
    assert!(!op.done);
    // The server keeps a tenth of the deadline (at most 100 ms) for the answer's trip.
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(2),
        "{took:?}"
    );
    let metadata = op.metadata.unwrap();
    assert_eq!(
        metadata.type_url,
        "type.googleapis.com/google.earthengine.v1.OperationMetadata"
    );
}

/// One server for the fuzz cases.
fn fuzz_server() -> String {
    static BASE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    crate::common::shared(&BASE, |_| {})
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 200, ..Default::default() })]
    /// Any name, filter or page token is answered with a client error (or a result), never
    /// INTERNAL or UNKNOWN.
    #[test]
    fn garbled_names_filters_and_tokens_are_client_errors(
        name in proptest::prop_oneof!["\\PC{0,60}", "projects/[a-z%/]{0,10}/operations/[ -~]{0,30}"],
        filter in "\\PC{0,40}",
        token in "[A-Za-z0-9_=-]{0,40}",
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let codes = runtime.block_on(async {
            let channel = Channel::from_shared(fuzz_server()).unwrap().connect().await.unwrap();
            let mut operations = OperationsClient::new(channel);
            let get = operations.get_operation(lro::GetOperationRequest { name: name.clone() }).await;
            let list = operations
                .list_operations(lro::ListOperationsRequest {
                    name: "projects/p".into(),
                    filter: filter.clone(),
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await;
            let cancel = operations.cancel_operation(lro::CancelOperationRequest { name: name.clone() }).await;
            [get.err(), list.err(), cancel.err()].map(|e| e.map(|s| s.code()))
        });
        for code in codes.into_iter().flatten() {
            proptest::prop_assert!(
                !matches!(code, tonic::Code::Internal | tonic::Code::Unknown | tonic::Code::Unavailable),
                "{code:?} for name {name:?}, filter {filter:?}, token {token:?}"
            );
        }
    }
}

/// A `CompleteBatch` on the Work stream applies each completion on its own and answers
/// them in order: a success, a failure, and one with a stale lease id (ABORTED) that
/// leaves its operation running.
#[tokio::test]
async fn a_batch_of_completions_is_answered_one_by_one() {
    use longrun_proto::longrun::v1 as pb;
    use pb::complete_request::Result as Report;
    use pb::complete_result::Result as Outcome;
    use pb::work_request::Call;
    use pb::work_response::Answer;

    let s = TestServer::start().await;
    for id in ["ok", "bad", "stale"] {
        s.submit("p", json!({"type": "BATCH", "operationId": id}))
            .await;
    }
    let (calls, mut inbound) = work_stream(&s).await;
    let lease = pb::LeaseRequest {
        worker: "w".into(),
        types: vec!["BATCH".into()],
        max_operations: 3,
        wait_timeout: Some(prost_types::Duration::default()),
        ..Default::default()
    };
    calls
        .send(pb::WorkRequest {
            id: 1,
            call: Some(Call::Lease(lease)),
        })
        .await
        .unwrap();
    let answer = inbound.message().await.unwrap().unwrap();
    let Some(Answer::Lease(leased)) = answer.answer else {
        panic!("a lease answer: {answer:?}")
    };
    let lease_of = |id: &str| {
        let name = format!("projects/p/operations/{id}");
        let lease = leased
            .leases
            .iter()
            .find(|l| l.operation.as_ref().unwrap().name == name);
        (name, lease.unwrap().lease_id.clone())
    };
    let complete = |id: &str, result: Report, stale: bool| {
        let (name, lease_id) = lease_of(id);
        let lease_id = if stale {
            format!("{lease_id}x")
        } else {
            lease_id
        };
        pb::CompleteRequest {
            name,
            lease_id,
            result: Some(result),
        }
    };
    let failure = longrun_proto::google::rpc::Status {
        code: 13,
        message: "broke".into(),
        details: Vec::new(),
    };
    let batch = pb::CompleteBatch {
        completions: vec![
            complete("ok", Report::Response(prost_types::Value::default()), false),
            complete("bad", Report::Error(failure), false),
            complete(
                "stale",
                Report::Response(prost_types::Value::default()),
                true,
            ),
        ],
    };
    calls
        .send(pb::WorkRequest {
            id: 2,
            call: Some(Call::CompleteBatch(batch)),
        })
        .await
        .unwrap();
    let answer = inbound.message().await.unwrap().unwrap();
    assert_eq!(answer.id, 2);
    let Some(Answer::Completed(completed)) = answer.answer else {
        panic!("a batch answer: {answer:?}")
    };
    let outcomes: Vec<_> = completed
        .results
        .into_iter()
        .map(|r| r.result.unwrap())
        .collect();
    assert!(
        matches!(&outcomes[0], Outcome::Operation(op) if op.done),
        "{outcomes:?}"
    );
    assert!(
        matches!(&outcomes[1], Outcome::Operation(op) if op.done),
        "{outcomes:?}"
    );
    assert!(
        matches!(&outcomes[2], Outcome::Error(e) if e.code == tonic::Code::Aborted as i32),
        "{outcomes:?}"
    );
    for (id, state) in [("ok", "SUCCEEDED"), ("bad", "FAILED"), ("stale", "RUNNING")] {
        let (_, op) = s
            .request("GET", &format!("/v1/projects/p/operations/{id}"), None)
            .await;
        assert_eq!(op["metadata"]["state"], state, "{op}");
    }
}

/// `StopLeasing` on the Work stream answers the lease waiting there at once (empty), and a
/// later lease on the stream does not wait; the stream goes on serving other calls.
#[tokio::test]
async fn stop_leasing_ends_the_streams_lease_waits() {
    use longrun_proto::longrun::v1 as pb;
    use pb::work_request::Call;
    use pb::work_response::Answer;

    let s = TestServer::start().await;
    let (calls, mut inbound) = work_stream(&s).await;
    let lease = |id| pb::WorkRequest {
        id,
        call: Some(Call::Lease(pb::LeaseRequest {
            worker: "w".into(),
            types: vec!["IDLE".into()],
            max_operations: 1,
            wait_timeout: Some(prost_types::Duration {
                seconds: 30,
                nanos: 0,
            }),
            ..Default::default()
        })),
    };
    calls.send(lease(1)).await.unwrap();
    // The lease waits (nothing of its type is queued) until the stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped = Instant::now();
    calls
        .send(pb::WorkRequest {
            id: 2,
            call: Some(Call::StopLeasing(pb::StopLeasing {})),
        })
        .await
        .unwrap();
    let mut answers = std::collections::HashMap::new();
    for _ in 0..2 {
        let answer = inbound.message().await.unwrap().unwrap();
        answers.insert(answer.id, answer.answer.unwrap());
    }
    assert!(
        stopped.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopped.elapsed()
    );
    assert!(
        matches!(&answers[&1], Answer::Lease(l) if l.leases.is_empty()),
        "{answers:?}"
    );
    assert!(
        matches!(&answers[&2], Answer::StoppedLeasing(_)),
        "{answers:?}"
    );
    // A later lease on the stream does not wait either.
    let again = Instant::now();
    calls.send(lease(3)).await.unwrap();
    let answer = inbound.message().await.unwrap().unwrap();
    assert_eq!(answer.id, 3);
    assert!(matches!(answer.answer, Some(Answer::Lease(l)) if l.leases.is_empty()));
    assert!(
        again.elapsed() < Duration::from_secs(5),
        "{:?}",
        again.elapsed()
    );
}

/// The Work stream states its message limit, and a message over it ends the stream with
/// RESOURCE_EXHAUSTED naming the size and the limit (never a silent close).
#[tokio::test]
async fn a_work_message_over_the_limit_ends_the_stream_with_the_reason() {
    use longrun_proto::longrun::v1 as pb;
    use pb::work_request::Call;

    let s = TestServer::start().await;
    let (calls, outbound) = tokio::sync::mpsc::channel(8);
    let response = pb::workers_client::WorkersClient::new(channel(&s).await)
        .max_encoding_message_size(usize::MAX)
        .work(tokio_stream::wrappers::ReceiverStream::new(outbound))
        .await
        .unwrap();
    let stated = response
        .metadata()
        .get(longrun_proto::MAX_MESSAGE_BYTES_HEADER)
        .unwrap()
        .to_str()
        .unwrap()
        .parse::<usize>()
        .unwrap();
    assert_eq!(stated, longrun_proto::MAX_MESSAGE_BYTES);
    let mut inbound = response.into_inner();
    let big = pb::CompleteRequest {
        name: "projects/p/operations/x".into(),
        lease_id: "l".into(),
        result: Some(pb::complete_request::Result::Response(prost_types::Value {
            kind: Some(prost_types::value::Kind::StringValue(
                "x".repeat(stated + 1),
            )),
        })),
    };
    calls
        .send(pb::WorkRequest {
            id: 1,
            call: Some(Call::Complete(big)),
        })
        .await
        .unwrap();
    let ended = inbound.message().await.unwrap_err();
    assert_eq!(ended.code(), tonic::Code::ResourceExhausted, "{ended:?}");
    assert!(ended.message().contains("too large"), "{ended:?}");
}
