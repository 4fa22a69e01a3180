//! The service-account flow with Google's own Python auth library (google-auth), not a
//! client written here: `longrun service-accounts create` writes the key file, the library
//! refreshes against the server's `/token` and calls the API; a disabled account is refused.
//! Needs `LONGRUN_TEST_PYTHON`, a Python with tests/python/requirements.txt installed (set
//! by .ci/run); without it the test says so and skips.

mod common;

use common::{Server, create_account, longrun_ok, python};

fn longrun(args: &[&str]) -> String {
    longrun_ok(args, &[])
}

#[test]
fn google_auth_service_account_flow() {
    let Ok(python_bin) = std::env::var("LONGRUN_TEST_PYTHON") else {
        eprintln!(
            "LONGRUN_TEST_PYTHON is not set: skipping the google-auth flow (.ci/run sets it)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start_with_config(
        &data,
        "[auth]\nmode = \"oauth\"\n\n[[iam.binding]]\nproject = \"p\"\n\
         role = \"roles/earthengine.writer\"\nmembers = [\"serviceAccount:ci-runner@p.iam.longrun\"]\n",
    );
    let base = server.base.clone();

    let key = create_account(&server, &data, "ci-runner", "p", dir.path());
    let data_dir = data.to_str().unwrap();
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&key).unwrap()).unwrap();
    assert_eq!(file["type"], "service_account");
    assert_eq!(file["client_email"], "ci-runner@p.iam.longrun");
    assert!(
        file["private_key"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    assert!(
        longrun(&["service-accounts", "list", "--data-dir", data_dir])
            .contains("ci-runner@p.iam.longrun\t")
    );

    let (ok, out) = python(
        &python_bin,
        "service_account_flow.py",
        &[&base, key.to_str().unwrap(), "allowed"],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("ok serviceAccount:ci-runner@p.iam.longrun"),
        "{out}"
    );

    longrun(&[
        "service-accounts",
        "disable",
        "ci-runner@p.iam.longrun",
        "--data-dir",
        data_dir,
    ]);
    let (ok, out) = python(
        &python_bin,
        "service_account_flow.py",
        &[&base, key.to_str().unwrap(), "refused"],
    );
    assert!(ok, "{out}");
    assert!(out.contains("refused"), "{out}");
}
