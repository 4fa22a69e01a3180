//! Logs and traces of `longrun serve`: JSON log lines, and spans exported over OTLP/gRPC to
//! a real receiver (the OTLP collector's `TraceService`, served here by tonic), continuing
//! the client's W3C `traceparent`; nothing exported when no endpoint is configured.

use longrun_proto::google::longrunning as lro;
use longrun_testkit::process::{Server, longrun};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::{Value, json};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP/1.1 request with extra headers, on a connection of its own; returns the status
/// and the JSON body.
async fn send(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, Value) {
    let host = base.trim_start_matches("http://");
    let mut tcp = tokio::net::TcpStream::connect(host).await.unwrap();
    let body = body.to_string();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    let status = answer[9..12].parse().unwrap();
    let (_, body) = answer.split_once("\r\n\r\n").unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Stops the server with SIGTERM and waits for it to exit cleanly, off the async threads
/// (the receiver serves the flush meanwhile).
async fn stop(server: Server) {
    server.signal(libc::SIGTERM);
    let status = tokio::task::spawn_blocking(move || server.wait_exit(Duration::from_secs(20)))
        .await
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_and_log_requests_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_logging(
        &dir.path().join("data"),
        "[log]\nformat = \"json\"\n",
        &[("LONGRUN_LOG", "info,longrun_server::request=debug")],
    );
    let stderr = server.child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::BufReader::new(stderr)
            .read_to_string(&mut text)
            .unwrap();
        text
    });
    let (status, op) = send(
        &server.base,
        "POST",
        "/v1/projects/p/operations:submit?access_token=query-secret-1",
        &[("Authorization", "Bearer header-secret-2")],
        &json!({"type": "SLEEP"}),
    )
    .await;
    assert_eq!(status, 200, "{op}");
    stop(server).await;
    let log = reader.join().unwrap();

    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    for line in &lines {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(line[field].is_string(), "no {field}: {line}");
        }
    }
    assert!(
        lines.iter().any(|l| l["message"] == "serving"
            && l["level"] == "INFO"
            && l["target"] == "longrun_server"),
        "{log}"
    );
    let request = lines
        .iter()
        .find(|l| l["target"] == "longrun_server::request")
        .unwrap_or_else(|| panic!("no request line in {log}"));
    assert_eq!(request["level"], "DEBUG");
    assert_eq!(request["message"], "request");
    assert_eq!(request["method"], "POST");
    assert_eq!(request["path"], "/v1/projects/p/operations:submit");
    assert_eq!(request["id"], "operations.submit");
    assert_eq!(request["status"], 200);
    assert!(request["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(
        !log.contains("query-secret-1") && !log.contains("header-secret-2"),
        "{log}"
    );
}

#[test]
fn log_format_flag_is_checked() {
    let (ok, _, err) = longrun(&["serve", "--log-format", "xml"], &[]);
    assert!(!ok);
    assert!(err.contains("xml"), "{err}");
    // An endpoint the exporter cannot use stops the start, with the reason.
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = longrun(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--otlp-endpoint",
            "https://collector:4317",
        ],
        &[],
    );
    assert!(!ok);
    assert!(err.contains("http://"), "{err}");
}

/// A real OTLP/gRPC trace receiver: keeps every export request.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<ExportTraceServiceRequest>>>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Receiver {
    /// Serves on 127.0.0.1:0; returns the receiver and its `http://` endpoint.
    async fn start() -> (Receiver, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let receiver = Receiver::default();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(receiver.clone()))
                .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
        );
        (receiver, endpoint)
    }

    /// Every span received, with its resource's `service.name`.
    fn spans(&self) -> Vec<(String, Span)> {
        let mut spans = Vec::new();
        for request in self.0.lock().unwrap().iter() {
            for resource in &request.resource_spans {
                let service = resource
                    .resource
                    .as_ref()
                    .and_then(|r| attribute(&r.attributes, "service.name"))
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default();
                for scope in &resource.scope_spans {
                    for span in &scope.spans {
                        spans.push((service.clone(), span.clone()));
                    }
                }
            }
        }
        spans
    }
}

fn attribute(
    attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue],
    key: &str,
) -> Option<AnyValue> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.clone())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn spans_are_exported_over_otlp_continuing_the_callers_trace() {
    let (receiver, endpoint) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_config(
        &dir.path().join("data"),
        &format!("[tracing]\notlp_endpoint = \"{endpoint}\"\nservice_name = \"longrun-test\"\n"),
    );
    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let headers = [("traceparent", traceparent.as_str())];
    let (status, op) = send(
        &server.base,
        "POST",
        "/v1/projects/p/operations:submit",
        &headers,
        &json!({"type": "SLEEP"}),
    )
    .await;
    assert_eq!(status, 200, "{op}");
    let name = op["name"].as_str().unwrap().to_string();
    let (status, _) = send(
        &server.base,
        "POST",
        &format!("/v1/{name}:cancel"),
        &headers,
        &json!({}),
    )
    .await;
    assert_eq!(status, 200);
    // A worker's lease and completion over REST.
    let (status, work) = send(
        &server.base,
        "POST",
        "/v1/projects/p/operations:submit",
        &[],
        &json!({"type": "WORK"}),
    )
    .await;
    assert_eq!(status, 200, "{work}");
    let (status, leases) = send(
        &server.base,
        "POST",
        "/v1/workers/w1:lease",
        &headers,
        &json!({"types": ["WORK"], "maxOperations": 1, "leaseDuration": "30s"}),
    )
    .await;
    assert_eq!(status, 200, "{leases}");
    let lease = &leases["leases"][0];
    assert_eq!(lease["operation"]["name"], work["name"]);
    let (status, done) = send(
        &server.base,
        "POST",
        &format!("/v1/{}:complete", work["name"].as_str().unwrap()),
        &headers,
        &json!({"leaseId": lease["leaseId"], "response": {"ok": true}}),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    // A 404 is a span too, with its status.
    let (status, _) = send(
        &server.base,
        "GET",
        "/v1/projects/p/operations/nope",
        &[],
        &Value::Null,
    )
    .await;
    assert_eq!(status, 404);
    // A gRPC call, with the context in its metadata.
    let mut grpc = lro::operations_client::OperationsClient::connect(server.base.clone())
        .await
        .unwrap();
    let mut request = tonic::Request::new(lro::GetOperationRequest { name: name.clone() });
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    grpc.get_operation(request).await.unwrap();
    // The export is batched: the shutdown flushes it.
    stop(server).await;

    let spans = receiver.spans();
    let names: Vec<&str> = spans.iter().map(|(_, s)| s.name.as_str()).collect();
    // The one span named `name` whose parent is `parent` (the client's span for requests).
    let child = |name: &str, parent: &[u8]| {
        let found: Vec<&Span> = spans
            .iter()
            .map(|(_, s)| s)
            .filter(|s| s.name == name && s.parent_span_id == parent)
            .collect();
        assert_eq!(found.len(), 1, "{name} in {names:?}");
        found[0].clone()
    };
    let client = (0..8)
        .map(|i| u8::from_str_radix(&CLIENT_SPAN[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<u8>>();
    let one = |name: &str| child(name, &client);
    assert!(
        spans
            .iter()
            .all(|(service, _)| service.contains("longrun-test"))
    );
    let string = |s: &Span, key: &str| match attribute(&s.attributes, key) {
        Some(AnyValue::StringValue(v)) => v,
        other => panic!("{key} of {}: {other:?}", s.name),
    };
    let int = |s: &Span, key: &str| match attribute(&s.attributes, key) {
        Some(AnyValue::IntValue(v)) => v,
        other => panic!("{key} of {}: {other:?}", s.name),
    };
    const SERVER: i32 = opentelemetry_proto::tonic::trace::v1::span::SpanKind::Server as i32;

    let submit = one("operations.submit");
    assert_eq!(hex(&submit.trace_id), TRACE_ID);
    assert_eq!(hex(&submit.parent_span_id), CLIENT_SPAN);
    assert_eq!(submit.kind, SERVER);
    assert_eq!(string(&submit, "http.request.method"), "POST");
    assert_eq!(
        string(&submit, "http.route"),
        "/v1/{+parent}/operations:submit"
    );
    assert_eq!(int(&submit, "http.response.status_code"), 200);
    let engine_submit = child("engine.submit", &submit.span_id);
    assert_eq!(engine_submit.trace_id, submit.trace_id);
    assert_eq!(string(&engine_submit, "longrun.operation.name"), name);
    assert_eq!(string(&engine_submit, "longrun.operation.type"), "SLEEP");
    child("store.insert", &engine_submit.span_id);

    let cancel = one("operations.cancel");
    assert_eq!(hex(&cancel.trace_id), TRACE_ID);
    assert_eq!(hex(&cancel.parent_span_id), CLIENT_SPAN);
    assert_eq!(string(&cancel, "http.route"), "/v1/{+name}:cancel");
    assert_eq!(string(&cancel, "longrun.operation.name"), name);
    assert_eq!(int(&cancel, "http.response.status_code"), 200);
    let engine_cancel = child("engine.cancel", &cancel.span_id);
    child("store.update", &engine_cancel.span_id);

    let lease = one("workers.lease");
    assert_eq!(hex(&lease.trace_id), TRACE_ID);
    let engine_lease = child("engine.lease", &lease.span_id);
    child("store.lease", &engine_lease.span_id);
    assert_eq!(int(&engine_lease, "longrun.leased"), 1);
    let complete = one("operations.complete");
    assert_eq!(string(&complete, "http.route"), "/v1/{+name}:complete");
    let engine_complete = child("engine.complete", &complete.span_id);
    assert_eq!(
        string(&engine_complete, "longrun.operation.name"),
        work["name"].as_str().unwrap()
    );

    // No traceparent: a trace of its own.
    let get = child("operations.get", &[]);
    assert_ne!(hex(&get.trace_id), TRACE_ID);
    assert_eq!(int(&get, "http.response.status_code"), 404);

    let call = one("google.longrunning.Operations/GetOperation");
    assert_eq!(hex(&call.trace_id), TRACE_ID);
    assert_eq!(hex(&call.parent_span_id), CLIENT_SPAN);
    assert_eq!(call.kind, SERVER);
    assert_eq!(string(&call, "rpc.system"), "grpc");
    assert_eq!(string(&call, "rpc.method"), "GetOperation");
    assert_eq!(int(&call, "rpc.grpc.status_code"), 0);

    // Background work (the built-in bulk-cancel worker's lease polls) makes no trace: the
    // one lease span is the request's.
    assert_eq!(names.iter().filter(|n| **n == "engine.lease").count(), 1);
}

#[tokio::test]
async fn nothing_is_exported_without_an_endpoint() {
    let (receiver, endpoint) = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    // The SDK's per-signal variable alone does not turn export on.
    let server = Server::start_with_env(
        &dir.path().join("data"),
        &[],
        &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", endpoint.as_str())],
    );
    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let (status, _) = send(
        &server.base,
        "POST",
        "/v1/projects/p/operations:submit",
        &[("traceparent", traceparent.as_str())],
        &json!({"type": "SLEEP"}),
    )
    .await;
    assert_eq!(status, 200);
    stop(server).await;
    assert!(receiver.0.lock().unwrap().is_empty());

    // The same server with the endpoint exports: the receiver above can tell.
    let server = Server::start_with_env(
        &dir.path().join("data"),
        &["--otlp-endpoint", endpoint.as_str()],
        &[],
    );
    let (status, _) = send(&server.base, "GET", "/healthz", &[], &Value::Null).await;
    assert_eq!(status, 200);
    stop(server).await;
    let names: Vec<String> = receiver.spans().into_iter().map(|(_, s)| s.name).collect();
    assert_eq!(names, ["healthz"]);
}
