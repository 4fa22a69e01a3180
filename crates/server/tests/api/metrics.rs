//! `/metrics` (docs/watch.md#metrics): the series named there, with the values the
//! calls made before the scrape imply; `/readyz`.

use crate::common::TestServer;
use serde_json::json;

/// The value of the sample `series` (name and labels exactly as exposed), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

pub(crate) async fn scrape(s: &TestServer) -> String {
    let response = s
        .client
        .send(http::Method::GET, "/metrics", None)
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    let content_type = response.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    String::from_utf8(response.body.to_vec()).unwrap()
}

#[tokio::test]
async fn the_documented_series_count_what_happened() {
    let s = TestServer::start().await;
    for id in ["a", "b", "c"] {
        s.submit("p", json!({"type": "T", "operationId": id})).await;
    }
    s.request("GET", "/v1/projects/p/operations/a", None).await;
    s.request("GET", "/v1/projects/p/operations/nope", None)
        .await;
    s.request("POST", "/v1/projects/p/operations/a:cancel", Some("{}"))
        .await;
    let (_, leased) = s
        .request(
            "POST",
            "/v1/workers/w:lease",
            Some(r#"{"types": ["T"], "waitTimeout": "0s", "maxOperations": 1}"#),
        )
        .await;
    let lease = &leased["leases"][0];
    let name = lease["operation"]["name"].as_str().unwrap().to_string();
    s.request("POST", &format!("/v1/{name}:cancel"), Some("{}"))
        .await;
    // The worker hears of the cancel on its heartbeat, and on each one after it: the
    // delivery is observed once.
    let beat = json!({"leaseId": lease["leaseId"]}).to_string();
    for _ in 0..3 {
        let (status, answer) = s
            .request("POST", &format!("/v1/{name}:heartbeat"), Some(&beat))
            .await;
        assert_eq!(
            (status, answer["cancelRequested"].clone()),
            (200, json!(true))
        );
    }
    let (status, _) = s.request("GET", "/readyz", None).await;
    assert_eq!(status, 200);

    let text = scrape(&s).await;
    let get = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series}\n{text}"));
    assert_eq!(
        get(r#"longrun_operations{project="p",type="T",state="CANCELLED"}"#),
        1.0
    );
    assert_eq!(
        get(r#"longrun_operations{project="p",type="T",state="CANCELLING"}"#),
        1.0
    );
    assert_eq!(
        get(r#"longrun_operations{project="p",type="T",state="PENDING"}"#),
        1.0
    );
    assert_eq!(
        get(r#"longrun_operation_transitions_total{type="T",from="PENDING",to="CANCELLED"}"#),
        1.0
    );
    assert_eq!(
        get(r#"longrun_operation_transitions_total{type="T",from="PENDING",to="RUNNING"}"#),
        1.0
    );
    assert_eq!(
        get(r#"longrun_operation_transitions_total{type="T",from="RUNNING",to="CANCELLING"}"#),
        1.0
    );
    assert_eq!(
        get(r#"longrun_http_requests_total{method="operations.submit",code="200"}"#),
        3.0
    );
    assert_eq!(
        get(r#"longrun_http_requests_total{method="operations.get",code="200"}"#),
        1.0
    );
    assert_eq!(
        get(r#"longrun_http_requests_total{method="operations.get",code="404"}"#),
        1.0
    );
    assert_eq!(
        get(r#"longrun_http_requests_total{method="readyz",code="200"}"#),
        1.0
    );
    assert_eq!(get("longrun_leases_granted_total"), 1.0);
    assert_eq!(get("longrun_leases_expired_total"), 0.0);
    assert_eq!(get("longrun_cancel_delivery_seconds_count"), 1.0);
    assert!(get("longrun_http_request_duration_seconds_count") >= 9.0);
    // Three inserts, two cancels, a lease, heartbeats: each a durable write.
    assert!(get("longrun_store_commit_seconds_count") >= 7.0, "{text}");

    // A gRPC call is counted by method and code.
    let channel = tonic::transport::Channel::from_shared(s.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut ops =
        longrun_proto::google::longrunning::operations_client::OperationsClient::new(channel);
    let missing = ops
        .get_operation(longrun_proto::google::longrunning::GetOperationRequest {
            name: "projects/p/operations/nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    ops.get_operation(longrun_proto::google::longrunning::GetOperationRequest {
        name: "projects/p/operations/a".into(),
    })
    .await
    .unwrap();
    let text = scrape(&s).await;
    let method = "google.longrunning.Operations/GetOperation";
    assert_eq!(
        sample(
            &text,
            &format!(r#"longrun_grpc_requests_total{{method="{method}",code="5"}}"#)
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!(r#"longrun_grpc_requests_total{{method="{method}",code="0"}}"#)
        ),
        Some(1.0),
        "{text}"
    );
    s.stop().await;
}

/// Label values come from closed sets, whatever callers send: gRPC calls of made-up services
/// and methods (no token needed) all count as `method="unknown"` with the code their caller
/// got, 12 UNIMPLEMENTED; HTTP requests to made-up paths as `method="unknown"`.
#[tokio::test]
async fn made_up_paths_add_no_series_and_count_the_code_the_caller_got() {
    let s = TestServer::start().await;
    let channel = tonic::transport::Channel::from_shared(s.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let made_up = [
        "/made.up.Service/Call1",
        "/made.up.Service/Call2",
        "/another.Made.Up/Call",
        "/google.longrunning.Operations/MadeUp",
        "/longrun.v1.Workers/Nope",
        "/v1/projects/p/operations",
    ];
    for path in made_up {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let answer = grpc
            .unary(
                tonic::Request::new(()),
                http::uri::PathAndQuery::from_static(path),
                tonic_prost::ProstCodec::<(), ()>::default(),
            )
            .await
            .unwrap_err();
        assert_eq!(
            answer.code(),
            tonic::Code::Unimplemented,
            "{path}: {answer:?}"
        );
    }
    let mut ops =
        longrun_proto::google::longrunning::operations_client::OperationsClient::new(channel);
    let missing = ops
        .get_operation(longrun_proto::google::longrunning::GetOperationRequest {
            name: "projects/p/operations/nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    for path in ["/made/up/1", "/made/up/2", "/v9/projects/p/frobnicate"] {
        let (status, _) = s.request("GET", path, None).await;
        assert_eq!(status, 404, "{path}");
    }

    let text = scrape(&s).await;
    assert_eq!(
        sample(
            &text,
            r#"longrun_grpc_requests_total{method="unknown",code="12"}"#
        ),
        Some(made_up.len() as f64),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"longrun_grpc_requests_total{method="google.longrunning.Operations/GetOperation",code="5"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"longrun_http_requests_total{method="unknown",code="404"}"#
        ),
        Some(3.0),
        "{text}"
    );
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("longrun_grpc_requests_total{"))
        .collect();
    assert_eq!(series.len(), 2, "{text}");
    assert!(
        !text.contains("made") && !text.contains("frobnicate") && !text.contains("Nope"),
        "{text}"
    );
    s.stop().await;
}
