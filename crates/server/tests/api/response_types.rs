//! A worker's `response` of a team's own message type: described by a descriptor set
//! named in `[api] descriptor_sets`, it is kept as given and read back
//! intact over REST and over gRPC; a type the server cannot describe is 400 naming the type
//! and the setting; a descriptor set that does not load stops the server at start.

use crate::common::TestServer;
use longrun_server::Config;
use prost::Message;
use serde_json::json;

const PROTO: &str = r#"
syntax = "proto3";
package acme.v1;
import "google/protobuf/timestamp.proto";

// What an export of the team's pipeline reports.
message ExportResult {
  string table = 1;
  int64 rows = 2;
  repeated string files = 3;
  google.protobuf.Timestamp finished = 4;
  Stats stats = 5;
  Kind kind = 6;
}

message Stats {
  double seconds = 1;
  map<string, uint64> bytes_per_file = 2;
}

enum Kind {
  KIND_UNSPECIFIED = 0;
  FULL = 1;
  INCREMENTAL = 2;
}
"#;

const TYPE: &str = "type.googleapis.com/acme.v1.ExportResult";

/// Compiles `PROTO` as `protoc --descriptor_set_out --include_imports` would, into
/// `dir/acme.binpb`; returns the encoded set.
fn descriptor_set(dir: &std::path::Path) -> Vec<u8> {
    std::fs::write(dir.join("acme.proto"), PROTO).unwrap();
    let set = protox::compile(["acme.proto"], [dir]).unwrap();
    let bytes = set.encode_to_vec();
    std::fs::write(dir.join("acme.binpb"), &bytes).unwrap();
    bytes
}

/// A config file in `dir` naming the set by a path relative to the file, read as the
/// server reads it (`--config`); the server runs it.
async fn server(dir: &std::path::Path) -> TestServer {
    let file = dir.join("longrun.toml");
    std::fs::write(&file, "[api]\ndescriptor_sets = [\"acme.binpb\"]\n").unwrap();
    let loaded = Config::from_file(&file).unwrap();
    TestServer::with(move |c| {
        let (data_dir, algorithms) = (c.data_dir.clone(), c.earthengine.algorithms_file.clone());
        *c = loaded;
        c.data_dir = data_dir;
        c.earthengine.algorithms_file = algorithms;
    })
    .await
}

async fn leased(s: &TestServer, id: &str) -> serde_json::Value {
    s.submit("p", json!({"type": "T", "operationId": id})).await;
    s.lease_now("w", &["T"], 1).await.remove(0)
}

#[tokio::test]
async fn a_teams_response_type_crosses_rest_and_grpc_intact() {
    let dir = tempfile::tempdir().unwrap();
    let set = descriptor_set(dir.path());
    let s = server(dir.path()).await;

    // Canonical proto3 JSON of the message: int64 and uint64 as strings, the enum by name.
    let response = json!({
        "@type": TYPE,
        "table": "exports.daily",
        "rows": "9007199254740993",
        "files": ["gs://b/part-0", "gs://b/part-1"],
        "finished": "2026-01-02T03:04:05.678Z",
        "stats": {"seconds": 12.5, "bytesPerFile": {"part-0": "18446744073709551615"}},
        "kind": "INCREMENTAL",
    });
    let lease = leased(&s, "typed").await;
    let body = json!({"leaseId": lease["leaseId"], "response": response});
    let (status, done) = s
        .request(
            "POST",
            "/v1/projects/p/operations/typed:complete",
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["response"], response);
    let (status, got) = s
        .request("GET", "/v1/projects/p/operations/typed", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(got["response"], response);

    // Over gRPC: an Any of the team's type whose bytes decode to the same message.
    let channel = tonic::transport::Channel::from_shared(s.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    use longrun_proto::google::longrunning as lro;
    let op = lro::operations_client::OperationsClient::new(channel)
        .get_operation(lro::GetOperationRequest {
            name: "projects/p/operations/typed".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let Some(lro::operation::Result::Response(any)) = op.result else {
        panic!("no response: {op:?}");
    };
    assert_eq!(any.type_url, TYPE);
    let pool = prost_reflect::DescriptorPool::decode(set.as_slice()).unwrap();
    let message = prost_reflect::DynamicMessage::decode(
        pool.get_message_by_name("acme.v1.ExportResult").unwrap(),
        any.value.as_slice(),
    )
    .unwrap();
    let mut json_form = serde_json::to_value(&message).unwrap();
    json_form["@type"] = json!(TYPE);
    assert_eq!(json_form, response);

    // A field the type lacks is refused, as for any described type.
    let lease = leased(&s, "extra").await;
    let body = json!({"leaseId": lease["leaseId"], "response": {"@type": TYPE, "colour": "red"}});
    let (status, error) = s
        .request(
            "POST",
            "/v1/projects/p/operations/extra:complete",
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(status, 400, "{error}");
    s.stop().await;
}

#[tokio::test]
async fn a_type_the_server_cannot_describe_is_refused_naming_the_setting() {
    let s = TestServer::start().await;
    let lease = leased(&s, "unknown").await;
    let body = json!({"leaseId": lease["leaseId"], "response": {"@type": TYPE, "table": "t"}});
    let (status, error) = s
        .request(
            "POST",
            "/v1/projects/p/operations/unknown:complete",
            Some(&body.to_string()),
        )
        .await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["status"], "INVALID_ARGUMENT");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("acme.v1.ExportResult") && message.contains("descriptor_sets"),
        "{message}"
    );
    let info = &error["error"]["details"][0];
    assert_eq!(info["metadata"]["type"], TYPE, "{error}");
    // Nothing was completed: the operation still runs under its lease.
    let (_, op) = s
        .request("GET", "/v1/projects/p/operations/unknown", None)
        .await;
    assert_eq!(op["metadata"]["state"], "RUNNING");
    s.stop().await;
}

#[tokio::test]
async fn a_descriptor_set_that_does_not_load_stops_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("longrun.toml");
    std::fs::write(dir.path().join("bad.binpb"), b"not a descriptor set").unwrap();
    for (sets, expected) in [
        ("[\"missing.binpb\"]", "missing.binpb"),
        ("[\"bad.binpb\"]", "bad.binpb"),
    ] {
        std::fs::write(&file, format!("[api]\ndescriptor_sets = {sets}\n")).unwrap();
        let loaded = Config::from_file(&file).unwrap();
        let data = dir.path().join("data");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut config = loaded;
        config.data_dir = data;
        let error = longrun_server::run(config, listener, std::future::pending())
            .await
            .unwrap_err();
        let text = format!("{error:#}");
        assert!(
            text.contains(expected) && text.contains("descriptor_sets"),
            "{text}"
        );
    }
}
