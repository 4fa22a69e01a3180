//! The official Earth Engine Python client (`earthengine-api`, pinned in
//! tests/python/requirements.txt) and its `earthengine` CLI, unmodified, against a server
//! running examples/ee-emulator.toml with auth mode `oauth`. The checks themselves are in
//! tests/python/ee_client.py, ee_cli.py and ee_key_file.py. Needs `LONGRUN_TEST_PYTHON` (set by .ci/run,
//! which fails if the client cannot be installed); without it the tests say so and skip.

use longrun_testkit::auth::{create_account, point_at};
use longrun_testkit::process::Server;
use longrun_testkit::python::Python;

const PROJECT: &str = "ee-project";

/// Runs tests/python/SCRIPT against a fresh emulator, with a key holding
/// `roles/earthengine.admin` on `PROJECT`; with `tls`, over https (the client trusts the
/// server's CA through the variables its HTTP libraries read).
fn run(script: &str, tls: bool) {
    let Some(python) = Python::from_env(script) else {
        return;
    };
    let root = longrun_testkit::repo_root();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let example = std::fs::read_to_string(root.join("examples/ee-emulator.toml")).unwrap();
    // The account is made before the server holds the data directory.
    let key = create_account(&data, "ee-tester", PROJECT, dir.path());
    let ca = longrun_testkit::tls::Ca::new("ee ca");
    let ca_file = ca.write(&dir.path().join("ca.crt"));
    let tls_config = if tls {
        let served = ca.server(dir.path(), "server");
        format!(
            "[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
            served.cert_file, served.key_file
        )
    } else {
        String::new()
    };
    let server = Server::start_with_config(
        &data,
        &format!(
            "{example}\n{tls_config}[auth]\nmode = \"oauth\"\n\n[[iam.binding]]\nproject = \"{PROJECT}\"\n\
             role = \"roles/earthengine.admin\"\nmembers = [\"serviceAccount:ee-tester@{PROJECT}.iam.longrun\"]\n"
        ),
    );
    point_at(&key, &server.base);
    let ca_file = ca_file.to_str().unwrap();
    let env: &[(&str, &str)] = if tls {
        // httplib2 (the API calls), requests (google-auth's token exchange), ssl's defaults.
        &[
            ("HTTPLIB2_CA_CERTS", ca_file),
            ("REQUESTS_CA_BUNDLE", ca_file),
            ("SSL_CERT_FILE", ca_file),
        ]
    } else {
        &[]
    };
    python.run_ok_with_env(script, &[&server.base, key.to_str().unwrap(), PROJECT], env);
}

#[test]
fn the_python_client() {
    run("ee_client.py", false);
}

#[test]
fn the_python_client_over_https() {
    run("ee_client.py", true);
}

#[test]
fn the_earthengine_cli() {
    run("ee_cli.py", false);
}

/// The keys of Google's service-account key files, which `service-accounts create` writes,
/// and no other: the `earthengine` CLI copies every key of the file into its settings.
const GOOGLE_KEYS: [&str; 11] = [
    "type",
    "project_id",
    "private_key_id",
    "private_key",
    "client_email",
    "client_id",
    "auth_uri",
    "token_uri",
    "auth_provider_x509_cert_url",
    "client_x509_cert_url",
    "universe_domain",
];

/// A key file has exactly the keys of Google's format, and the `earthengine` CLI given it
/// with `--service_account_file` talks to the configured project, not to the key's.
#[test]
fn key_files_are_googles_and_the_configured_project_wins() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key_project = "key-project";
    let mut config = String::from("[auth]\nmode = \"oauth\"\n");
    for p in [PROJECT, key_project] {
        config.push_str(&format!(
            "\n[[iam.binding]]\nproject = \"{p}\"\nrole = \"roles/earthengine.admin\"\n\
             members = [\"serviceAccount:ee-tester@{key_project}.iam.longrun\"]\n"
        ));
    }
    let key = create_account(&data, "ee-tester", key_project, dir.path());
    let server = Server::start_with_config(&data, &config);
    point_at(&key, &server.base);
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let mut keys: Vec<&str> = file
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    let mut google = GOOGLE_KEYS.to_vec();
    google.sort();
    assert_eq!(keys, google, "{file}");
    assert!(
        file.as_object().unwrap().values().all(|v| v.is_string()),
        "{file}"
    );
    assert_eq!(file["type"], "service_account");
    assert_eq!(file["project_id"], key_project);
    assert_eq!(
        file["client_email"],
        format!("ee-tester@{key_project}.iam.longrun")
    );
    assert_eq!(file["token_uri"], format!("{}/token", server.base));
    assert_eq!(file["universe_domain"], "googleapis.com");
    let client_id = file["client_id"].as_str().unwrap();
    assert!(
        !client_id.is_empty() && client_id.bytes().all(|b| b.is_ascii_digit()),
        "{client_id}"
    );

    if let Some(python) = Python::from_env("ee_key_file.py") {
        python.run_ok(
            "ee_key_file.py",
            &[&server.base, key.to_str().unwrap(), PROJECT],
        );
    }
}
