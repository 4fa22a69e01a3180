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
