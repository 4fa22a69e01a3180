//! google.longrunning.Operations over gRPC with a client not written here: Python `grpcio`
//! with the operations messages of `googleapis-common-protos` (tests/python/
//! grpc_operations.py), against a server in auth mode `oauth`. Needs `LONGRUN_TEST_PYTHON`
//! (set by .ci/run); without it the test says so and skips.

mod common;

use common::{Server, access_token, longrun_ok};
use std::path::Path;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_client() {
    let Ok(python) = std::env::var("LONGRUN_TEST_PYTHON") else {
        eprintln!("LONGRUN_TEST_PYTHON is not set: skipping the grpcio client (.ci/run sets it)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[auth]\nmode = \"oauth\"\n\n[[iam.binding]]\nproject = \"p\"\n\
         role = \"roles/earthengine.admin\"\nmembers = [\"serviceAccount:grpc-tester@p.iam.longrun\"]\n",
    )
    .unwrap();
    let server = Server::start_with(&data, &["--config", config.to_str().unwrap()]);
    let key = dir.path().join("key.json");
    longrun_ok(
        &[
            "service-accounts",
            "create",
            "grpc-tester",
            "--project",
            "p",
            "--key-file",
            key.to_str().unwrap(),
            "--token-uri",
            &format!("{}/token", server.base),
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    let token = access_token(&server.base, &key).await;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/grpc_operations.py");
    let out = Command::new(python)
        .arg(script)
        .args([&server.base, &token])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "grpc_operations.py failed:\n{text}");
    assert!(text.lines().any(|l| l.trim() == "ok"), "{text}");
}
