//! `longrun projects` (docs/projects.md#registry): the registry on a server's store and through
//! the server with a project admin's token, and the gate it controls, seen by a client.

use longrun_testkit::auth::{access_token, create_account, point_at};
use longrun_testkit::process::{Server, longrun, longrun_ok};
use serde_json::{Value, json};

const CONFIG: &str = r#"
[auth]
mode = "oauth"

[projects]
require_registration = true
help_url = "https://example.test/register"

[[iam.binding]]
project = "*"
role = "roles/longrun.projectAdmin"
members = ["serviceAccount:registrar@p.iam.longrun"]

[[iam.binding]]
project = "p"
role = "roles/earthengine.writer"
members = ["serviceAccount:writer@p.iam.longrun"]
"#;

fn entries(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_on_the_store_and_through_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The accounts are made offline, before a server holds the data directory.
    let registrar_key = create_account(&data, "registrar", "p", dir.path());
    let writer_key = create_account(&data, "writer", "p", dir.path());
    let server = Server::start_with_config(&data, CONFIG);
    point_at(&registrar_key, &server.base);
    point_at(&writer_key, &server.base);
    // The server's own tokens: they hold across its restarts (the secret is kept).
    let registrar = access_token(&server.base, &registrar_key).await;
    let writer = access_token(&server.base, &writer_key).await;
    let submit = |base: String| {
        let client = longrun_client::Client::new(&base).with_token(&writer);
        async move {
            client
                .call(
                    http::Method::POST,
                    "/v1/projects/p/operations:submit",
                    Some(&json!({"type": "T"})),
                )
                .await
        }
    };
    let refused = |e: longrun_client::Error| match e {
        longrun_client::Error::Api {
            http_status, body, ..
        } => (http_status, body["error"]["details"][0]["reason"].clone()),
        other => panic!("{other}"),
    };
    assert_eq!(
        refused(submit(server.base.clone()).await.unwrap_err()),
        (403, json!("PROJECT_NOT_REGISTERED"))
    );

    // On the store: refused while the server holds it, done once it has stopped.
    let local = ["--data-dir", data.to_str().unwrap()];
    let mut args = vec![
        "projects",
        "register",
        "p",
        "--plan",
        "noncommercial",
        "--registered-on",
        "2024-01-01",
    ];
    args.extend(local);
    let (ok, _, err) = longrun(&args, &[]);
    assert!(
        !ok && err.contains("is in use") && err.contains("--server"),
        "{err}"
    );
    drop(server);
    let out = longrun_ok(&args, &[]);
    assert_eq!(
        entries(&out),
        [
            json!({"project": "p", "plan": "noncommercial", "registeredOn": "2024-01-01", "eligibility": "unverified"})
        ]
    );
    let (ok, _, err) = longrun(&args, &[]);
    assert!(!ok && err.contains("already registered"), "{err}");
    let server = Server::start_with_config(&data, CONFIG);
    let base = server.base.as_str();
    assert_eq!(
        refused(submit(base.to_string()).await.unwrap_err()),
        (403, json!("ELIGIBILITY_NOT_VERIFIED"))
    );

    // Through the server: only with a project admin's token.
    let remote = ["--server", base];
    let mut update = vec!["projects", "update", "p", "--eligibility", "verified"];
    update.extend(remote);
    let (ok, _, err) = longrun(&update, &[]);
    assert!(!ok && err.contains("UNAUTHENTICATED"), "{err}");
    let (ok, _, err) = longrun(&update, &[("LONGRUN_TOKEN", writer.as_str())]);
    assert!(!ok && err.contains("PERMISSION_DENIED"), "{err}");
    let admin = [("LONGRUN_TOKEN", registrar.as_str())];
    let out = longrun_ok(&update, &admin);
    assert_eq!(entries(&out)[0]["eligibility"], "verified");
    submit(base.to_string()).await.unwrap();

    let mut register_q = vec!["projects", "register", "q", "--plan", "commercial"];
    register_q.extend(remote);
    longrun_ok(&register_q, &admin);
    let mut list = vec!["projects", "list"];
    list.extend(remote);
    let listed: Vec<Value> = entries(&longrun_ok(&list, &admin))
        .into_iter()
        .map(|e| e["project"].clone())
        .collect();
    assert_eq!(listed, [json!("p"), json!("q")]);

    let mut unregister = vec!["projects", "unregister", "p"];
    unregister.extend(remote);
    longrun_ok(&unregister, &admin);
    let mut describe_q = vec!["projects", "describe", "q"];
    describe_q.extend(remote);
    assert_eq!(
        entries(&longrun_ok(&describe_q, &admin))[0]["plan"],
        "commercial"
    );
    assert_eq!(
        refused(submit(base.to_string()).await.unwrap_err()),
        (403, json!("PROJECT_NOT_REGISTERED"))
    );

    // What the server wrote is on the store once it has stopped.
    drop(server);
    let mut list_local = vec!["projects", "list"];
    list_local.extend(local);
    let listed: Vec<Value> = entries(&longrun_ok(&list_local, &[]))
        .into_iter()
        .map(|e| e["project"].clone())
        .collect();
    assert_eq!(listed, [json!("q")]);
    let mut describe = vec!["projects", "describe", "p"];
    describe.extend(local);
    let (ok, _, err) = longrun(&describe, &[]);
    assert!(!ok && err.contains("not registered"), "{err}");
}
