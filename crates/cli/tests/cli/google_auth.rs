//! The service-account flow with Google's own Python auth library (google-auth), not a
//! client written here: `longrun service-accounts create` writes the key file, the library
//! refreshes against the server's `/token` and calls the API; a disabled account is refused.
//! Needs `LONGRUN_TEST_PYTHON`, a Python with tests/python/requirements.txt installed (set
//! by .ci/run); without it the test says so and skips.

use longrun_testkit::auth::{access_token, create_account, point_at};
use longrun_testkit::process::{Server, longrun_ok};
use longrun_testkit::python::Python;

fn longrun(args: &[&str]) -> String {
    longrun_ok(args, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_auth_service_account_flow() {
    let Some(python) = Python::from_env("the google-auth flow") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_dir = data.to_str().unwrap();
    // The accounts are made offline, before the server holds the data directory.
    let key = create_account(&data, "ci-runner", "p", dir.path());
    let admin_key = create_account(&data, "keys-admin", "p", dir.path());
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
    let server = Server::start_with_config(
        &data,
        "[auth]\nmode = \"oauth\"\n\n[[iam.binding]]\nproject = \"p\"\n\
         role = \"roles/earthengine.writer\"\nmembers = [\"serviceAccount:ci-runner@p.iam.longrun\"]\n\n\
         [[iam.binding]]\nproject = \"p\"\nrole = \"roles/longrun.serviceAccountAdmin\"\n\
         members = [\"serviceAccount:keys-admin@p.iam.longrun\"]\n",
    );
    let base = server.base.clone();
    point_at(&key, &base);
    point_at(&admin_key, &base);

    let (ok, out) = python.run(
        "service_account_flow.py",
        &[&base, key.to_str().unwrap(), "allowed"],
    );
    assert!(ok, "{out}");
    assert!(
        out.contains("ok serviceAccount:ci-runner@p.iam.longrun"),
        "{out}"
    );

    // While the server runs, accounts are managed through it.
    let admin = access_token(&base, &admin_key).await;
    longrun_ok(
        &[
            "service-accounts",
            "disable",
            "ci-runner@p.iam.longrun",
            "--server",
            &base,
        ],
        &[("LONGRUN_TOKEN", admin.as_str())],
    );
    let (ok, out) = python.run(
        "service_account_flow.py",
        &[&base, key.to_str().unwrap(), "refused"],
    );
    assert!(ok, "{out}");
    assert!(out.contains("refused"), "{out}");
}
