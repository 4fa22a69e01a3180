//! google.longrunning.Operations over gRPC with a client not written here: Python `grpcio`
//! with the operations messages of `googleapis-common-protos` (tests/python/
//! grpc_operations.py), against a server in auth mode `oauth`. Needs `LONGRUN_TEST_PYTHON`
//! (set by .ci/run); without it the test says so and skips.

use longrun_testkit::auth::{access_token, create_account, point_at};
use longrun_testkit::process::Server;
use longrun_testkit::python::Python;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_client() {
    let Some(python) = Python::from_env("the grpcio client") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The account is made before the server holds the data directory.
    let key = create_account(&data, "grpc-tester", "p", dir.path());
    let server = Server::start_with_config(
        &data,
        "[auth]\nmode = \"oauth\"\n\n[[iam.binding]]\nproject = \"p\"\n\
         role = \"roles/earthengine.admin\"\nmembers = [\"serviceAccount:grpc-tester@p.iam.longrun\"]\n",
    );
    point_at(&key, &server.base);
    let token = access_token(&server.base, &key).await;
    python.run_ok("grpc_operations.py", &[&server.base, &token]);
}

/// Every operation served parses with protobuf's `json_format` into Google's
/// `google.longrunning.Operation`, and google.rpc error details cross REST → gRPC → REST
/// and gRPC → REST → gRPC intact (tests/python/proto_json.py).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proto3_json_fidelity() {
    let Some(python) = Python::from_env("proto_json.py") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let descriptors = dir.path().join("descriptors.bin");
    std::fs::write(&descriptors, longrun_proto::FILE_DESCRIPTOR_SET).unwrap();
    python.run_ok(
        "proto_json.py",
        &[&server.base, descriptors.to_str().unwrap()],
    );
}
