//! The CLI against a server in auth mode `oauth`: `service-accounts --server` with an admin
//! token, and `operations` with `LONGRUN_TOKEN`.

use longrun_testkit::auth::{access_token, create_account, point_at};
use longrun_testkit::process::{Server, longrun, longrun_exit, longrun_ok};
use serde_json::Value;

const CONFIG: &str = r#"
[auth]
mode = "oauth"

[[iam.binding]]
project = "p"
role = "roles/longrun.serviceAccountAdmin"
members = ["serviceAccount:keys-admin@p.iam.longrun"]

[[iam.binding]]
project = "p"
role = "roles/earthengine.writer"
members = ["serviceAccount:keys-admin@p.iam.longrun"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_accounts_and_operations_through_a_server_with_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The first admin is made offline, on the store, before the server holds it.
    let admin_key = create_account(&data, "keys-admin", "p", dir.path());
    let server = Server::start_with_config(&data, CONFIG);
    let base = server.base.as_str();
    let token_uri = format!("{base}/token");
    point_at(&admin_key, &server.base);
    let token = access_token(base, &admin_key).await;
    let with_token = [("LONGRUN_TOKEN", token.as_str())];

    // Remotely: without a token nothing is made and no key file is left behind.
    let key = dir.path().join("ci.json");
    let create = [
        "service-accounts",
        "create",
        "ci-runner",
        "--project",
        "p",
        "--key-file",
        key.to_str().unwrap(),
        "--token-uri",
        &token_uri,
        "--server",
        base,
    ];
    let (ok, _, err) = longrun(&create, &[]);
    assert!(!ok && err.contains("UNAUTHENTICATED"), "{err}");
    assert!(!key.exists());
    let out = longrun_ok(&create, &with_token);
    assert!(out.contains("created ci-runner@p.iam.longrun"), "{out}");
    let file: Value = serde_json::from_slice(&std::fs::read(&key).unwrap()).unwrap();
    assert_eq!(file["token_uri"], token_uri.as_str());
    // The new key gets tokens from the server that registered it.
    access_token(base, &key).await;
    // A second create of the same name fails and keeps the first key file intact.
    let again = dir.path().join("again.json");
    let mut create_again = create;
    create_again[6] = again.to_str().unwrap();
    let (ok, _, err) = longrun(&create_again, &with_token);
    assert!(!ok && err.contains("already exists"), "{err}");
    assert!(!again.exists());

    let remote = ["--server", base];
    let list = |extra: &[&str]| {
        let mut args = vec!["service-accounts", "list", "--project", "p"];
        args.extend(remote);
        args.extend(extra);
        longrun_ok(&args, &with_token)
    };
    let listed = list(&[]);
    assert!(listed.contains("ci-runner@p.iam.longrun\t"), "{listed}");
    assert!(listed.contains("keys-admin@p.iam.longrun\t"), "{listed}");
    // By email, or by name and project as `create` takes it.
    let by_email: &[&str] = &["ci-runner@p.iam.longrun"];
    let by_name: &[&str] = &["ci-runner", "--project", "p"];
    for (verb, account, state) in [
        ("disable", by_email, "DISABLED"),
        ("enable", by_name, "ENABLED"),
    ] {
        let mut args = vec!["service-accounts", verb];
        args.extend(account);
        args.extend(remote);
        longrun_ok(&args, &with_token);
        assert!(
            list(&[]).contains(&format!(
                "ci-runner@p.iam.longrun\t{}\t{state}",
                file["private_key_id"].as_str().unwrap()
            )),
            "{verb}"
        );
    }
    // A name alone, or an email of another project, is refused before anything is sent.
    let (ok, _, err) = longrun(
        &["service-accounts", "disable", "ci-runner", "--server", base],
        &with_token,
    );
    assert!(!ok && err.contains("--project"), "{err}");
    let (ok, _, err) = longrun(
        &[
            "service-accounts",
            "disable",
            "ci-runner@p.iam.longrun",
            "--project",
            "q",
            "--server",
            base,
        ],
        &with_token,
    );
    assert!(!ok && err.contains("not an account of project q"), "{err}");
    let mut delete = vec!["service-accounts", "delete", "ci-runner@p.iam.longrun"];
    delete.extend(remote);
    longrun_ok(&delete, &with_token);
    let (ok, _, err) = longrun(&delete, &with_token);
    assert!(!ok && err.contains("no service account"), "{err}");
    assert!(!list(&[]).contains("ci-runner@"));

    // `operations` sends LONGRUN_TOKEN; without it the server refuses (exit 6).
    let submit = [
        "operations",
        "submit",
        "--server",
        base,
        "--project",
        "p",
        "--type",
        "T",
        "--operation-id",
        "authed",
    ];
    let (ok, _, err) = longrun(&submit, &[]);
    assert!(!ok && err.contains("UNAUTHENTICATED"), "{err}");
    let out = longrun_ok(&submit, &with_token);
    assert_eq!(out.trim(), "projects/p/operations/authed");
    let listed = longrun_ok(
        &[
            "operations",
            "list",
            "--server",
            base,
            "--project",
            "p",
            "--format",
            "json",
        ],
        &with_token,
    );
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["name"], "projects/p/operations/authed");
}

/// `--key-file` (and `LONGRUN_KEY_FILE`) on the commands that talk to a server, and `longrun
/// auth print-access-token`: the key is exchanged at its `token_uri` as Google's libraries
/// do; a key the server refuses, or none at all, ends the command with exit code 6.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_files_authenticate_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let admin_key = create_account(&data, "keys-admin", "p", dir.path());
    // An account with no role on the project.
    let idle_key = create_account(&data, "no-roles", "p", dir.path());
    let server = Server::start_with_config(&data, CONFIG);
    let base = server.base.as_str();
    point_at(&admin_key, base);
    point_at(&idle_key, base);
    let admin = admin_key.to_str().unwrap();

    // The printed token is the server's, and opens the API to any client.
    let printed = longrun_ok(&["auth", "print-access-token", "--key-file", admin], &[]);
    let token = printed.trim();
    assert_eq!(printed.lines().count(), 1, "{printed}");
    let client = longrun_client::Client::new(base).with_token(token);
    client.list("p", "", 10, "").await.unwrap();
    let from_env = longrun_ok(
        &["auth", "print-access-token"],
        &[("LONGRUN_KEY_FILE", admin)],
    );
    assert!(!from_env.trim().is_empty());

    // Every command that talks to a server takes the key file, as an option or from the
    // environment.
    let submit = |env: &[(&str, &str)], extra: &[&str]| {
        let mut args = vec![
            "operations",
            "submit",
            "--server",
            base,
            "--project",
            "p",
            "--type",
            "T",
        ];
        args.extend(extra);
        longrun_exit(&args, env)
    };
    let (code, out, err) = submit(&[], &["--key-file", admin]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("projects/p/operations/"), "{out}");
    let (code, _, err) = submit(&[("LONGRUN_KEY_FILE", admin)], &[]);
    assert_eq!(code, 0, "{err}");
    // An option wins over the environment.
    let (code, _, err) = submit(&[("LONGRUN_TOKEN", "stale")], &["--key-file", admin]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = submit(&[("LONGRUN_KEY_FILE", admin)], &["--token", token]);
    assert_eq!(code, 0, "{err}");
    let listed = longrun_ok(
        &[
            "queues",
            "list",
            "--server",
            base,
            "--project",
            "p",
            "--key-file",
            admin,
        ],
        &[],
    );
    assert!(listed.contains('T'), "{listed}");
    let accounts = longrun_ok(
        &[
            "service-accounts",
            "list",
            "--project",
            "p",
            "--server",
            base,
            "--key-file",
            admin,
        ],
        &[],
    );
    assert!(accounts.contains("no-roles@p.iam.longrun"), "{accounts}");
    // In `create`, `--key-file` is the file written: the variable authenticates.
    let written = dir.path().join("made.json");
    longrun_ok(
        &[
            "service-accounts",
            "create",
            "made-by-key",
            "--project",
            "p",
            "--key-file",
            written.to_str().unwrap(),
            "--server",
            base,
        ],
        &[("LONGRUN_KEY_FILE", admin)],
    );
    let made: Value = serde_json::from_slice(&std::fs::read(&written).unwrap()).unwrap();
    assert_eq!(made["client_email"], "made-by-key@p.iam.longrun");

    // An account without the role: the server's refusal is exit code 6, for the account
    // commands too.
    let idle = idle_key.to_str().unwrap();
    let (code, _, err) = submit(&[], &["--key-file", idle]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("PERMISSION_DENIED"), "{err}");
    let (code, _, err) = longrun_exit(
        &[
            "service-accounts",
            "list",
            "--project",
            "p",
            "--server",
            base,
            "--key-file",
            idle,
        ],
        &[],
    );
    assert_eq!(code, 6, "{err}");

    // A disabled account's key is refused at the token endpoint: exit code 6, with the
    // endpoint's OAuth error.
    longrun_ok(
        &[
            "service-accounts",
            "disable",
            "no-roles@p.iam.longrun",
            "--server",
            base,
            "--key-file",
            admin,
        ],
        &[],
    );
    let (code, _, err) = longrun_exit(&["auth", "print-access-token", "--key-file", idle], &[]);
    assert_eq!(code, 6, "{err}");
    assert!(
        err.contains("invalid_grant") && err.contains("disabled"),
        "{err}"
    );
    let (code, _, err) = submit(&[], &["--key-file", idle]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("invalid_grant"), "{err}");

    // Files that are not keys, and both credentials at once.
    let missing = dir.path().join("missing.json");
    let (code, _, err) = submit(&[], &["--key-file", missing.to_str().unwrap()]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("cannot be read"), "{err}");
    let not_a_key = dir.path().join("user.json");
    std::fs::write(&not_a_key, r#"{"type": "authorized_user"}"#).unwrap();
    let (code, _, err) = submit(&[], &["--key-file", not_a_key.to_str().unwrap()]);
    assert_eq!(code, 6, "{err}");
    assert!(err.contains("service account"), "{err}");
    let (code, _, err) = submit(&[], &["--key-file", admin, "--token", token]);
    assert_eq!(code, 2, "{err}");
}
