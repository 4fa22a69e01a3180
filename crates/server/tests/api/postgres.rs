//! The server on the PostgreSQL store: the core flows over HTTP. Needs
//! `LONGRUN_TEST_DATABASE_URL`; without it the test prints a notice and passes as skipped.

use crate::common::TestServer;
use longrun_server::config::StoreKind;
use longrun_testkit::postgres::Schema;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Tests that start three servers on PostgreSQL take turns: each server keeps up to 16
/// connections, so several such tests at once pass the database's `max_connections`
/// (100 by default) and the store answers 503.
pub(crate) async fn several_servers() -> tokio::sync::SemaphorePermit<'static> {
    static TURN: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);
    TURN.acquire().await.unwrap()
}

pub(crate) async fn server_on(url: &str) -> TestServer {
    server_with(url, |_| {}).await
}

/// A server on the PostgreSQL store at `url`, its configuration changed by `configure`.
pub(crate) async fn server_with(
    url: &str,
    configure: impl FnOnce(&mut longrun_server::Config),
) -> TestServer {
    TestServer::with(|c| {
        c.store = StoreKind::Postgres;
        c.database_url = Some(url.to_string());
        configure(c);
    })
    .await
}

/// Three servers on the PostgreSQL store at `url`, each configured by `configure`.
pub(crate) async fn three_servers(
    url: &str,
    configure: impl Fn(&mut longrun_server::Config),
) -> Vec<TestServer> {
    let mut servers = Vec::new();
    for _ in 0..3 {
        servers.push(server_with(url, &configure).await);
    }
    servers
}

/// The end of a test on a `schema`: stops its servers, then drops the schema.
pub(crate) async fn finish(schema: Schema, servers: impl IntoIterator<Item = TestServer>) {
    for s in servers {
        s.stop().await;
    }
    schema.remove().await.unwrap();
}

/// Six takers on the servers (two each on three) lease `op_type` at once, five times each,
/// up to 3 at a time without waiting: every lease they got (for checking that a limit held
/// across servers).
pub(crate) async fn race_leases(
    servers: std::sync::Arc<Vec<TestServer>>,
    op_type: &'static str,
) -> Vec<Value> {
    let mut takers = Vec::new();
    for t in 0..6 {
        let servers = servers.clone();
        takers.push(tokio::spawn(async move {
            let s = &servers[t % servers.len()];
            let mut got = Vec::new();
            for _ in 0..5 {
                got.extend(s.lease_now(&format!("w{t}"), &[op_type], 3).await);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for taker in takers {
        all.extend(taker.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_list_cancel_wait_lease_on_postgres() {
    let Some(schema) = Schema::create("one").await else {
        return;
    };
    let s = server_on(schema.url()).await;

    for i in 0..7 {
        s.submit("p", json!({"type": "T", "operationId": format!("op{i}")}))
            .await;
    }
    let page = s.client.list("p", "done = false", 5, "").await.unwrap();
    assert_eq!(page["operations"].as_array().unwrap().len(), 5);
    let rest = s
        .client
        .list(
            "p",
            "done = false",
            5,
            page["nextPageToken"].as_str().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(rest["operations"].as_array().unwrap().len(), 2);
    assert!(rest.get("nextPageToken").is_none());

    let (status, _) = s
        .request("POST", "/v1/projects/p/operations/op0:cancel", Some("{}"))
        .await;
    assert_eq!(status, 200);
    let (_, op) = s
        .request(
            "POST",
            "/v1/projects/p/operations/op0:wait",
            Some(r#"{"timeout": "1s"}"#),
        )
        .await;
    assert_eq!(
        (op["metadata"]["state"].clone(), op["error"]["code"].clone()),
        (json!("CANCELLED"), json!(1))
    );

    let (_, leased) = s
        .request(
            "POST",
            "/v1/workers/w:lease",
            Some(r#"{"types": ["T"], "waitTimeout": "0s"}"#),
        )
        .await;
    let lease_id = leased["leases"][0]["leaseId"].as_str().unwrap().to_string();
    assert_eq!(
        leased["leases"][0]["operation"]["name"],
        "projects/p/operations/op1"
    );
    let done = json!({"leaseId": lease_id, "response": {"ok": true}}).to_string();
    let (status, op) = s
        .request(
            "POST",
            "/v1/projects/p/operations/op1:complete",
            Some(&done),
        )
        .await;
    assert_eq!(
        (status, op["metadata"]["state"].clone()),
        (200, json!("SUCCEEDED"))
    );

    finish(schema, [s]).await;
}

async fn post(s: &TestServer, path: &str, body: Value) -> Value {
    let (status, answer) = s.request("POST", path, Some(&body.to_string())).await;
    assert_eq!(status, 200, "{path}: {answer}");
    answer
}

/// Three servers on one database behave as one service: work submitted on A is leased on
/// B, cancelled through C and waited on through A, each woken across servers at once; and
/// no operation is ever leased twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_on_one_database() {
    let Some(schema) = Schema::create("three").await else {
        return;
    };
    let _turn = several_servers().await;
    let (a, b, c) = (
        server_on(schema.url()).await,
        server_on(schema.url()).await,
        server_on(schema.url()).await,
    );

    // A lease waiting on B is woken by a submit on A: before B's own recheck could have
    // found it, which comes a second after the wait began, so after `asked` at the earliest.
    let asked = Instant::now();
    let waiting_lease = {
        let client = b.client.clone();
        tokio::spawn(async move {
            let body = json!({"types": ["X"], "waitTimeout": "20s", "leaseDuration": "60s"});
            let answer = client
                .call(http::Method::POST, "/v1/workers/wb:lease", Some(&body))
                .await
                .unwrap();
            (answer, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.submit("p", json!({"type": "X", "operationId": "x"}))
        .await;
    let (leased, woken) = waiting_lease.await.unwrap();
    assert!(
        woken.duration_since(asked) < Duration::from_secs(1),
        "{:?}",
        woken.duration_since(asked)
    );
    let lease_id = leased["leases"][0]["leaseId"].as_str().unwrap().to_string();

    // B's waiting heartbeat hears a cancel made through C; A's wait hears the end.
    let heartbeat = {
        let client = b.client.clone();
        let body = json!({"leaseId": lease_id, "waitForCancel": "20s"});
        tokio::spawn(async move {
            let answer = client
                .call(
                    http::Method::POST,
                    "/v1/projects/p/operations/x:heartbeat",
                    Some(&body),
                )
                .await
                .unwrap();
            (answer, Instant::now())
        })
    };
    let waiting = {
        let client = a.client.clone();
        tokio::spawn(async move {
            let name = longrun_types::Name::parse("projects/p/operations/x").unwrap();
            (
                client
                    .wait(&name, Some(std::time::Duration::from_secs(20)))
                    .await
                    .unwrap(),
                Instant::now(),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let cancelled = Instant::now();
    post(&c, "/v1/projects/p/operations/x:cancel", json!({})).await;
    let (beat, heard) = heartbeat.await.unwrap();
    assert_eq!(beat["cancelRequested"], true);
    assert!(
        heard.duration_since(cancelled) < Duration::from_millis(500),
        "{:?}",
        heard.duration_since(cancelled)
    );
    let acknowledged = Instant::now();
    post(
        &b,
        "/v1/projects/p/operations/x:complete",
        json!({"leaseId": lease_id, "error": {"code": 1, "message": "stopped"}}),
    )
    .await;
    let (op, done) = waiting.await.unwrap();
    assert_eq!(op["metadata"]["state"], "CANCELLED");
    assert!(
        done.duration_since(acknowledged) < Duration::from_millis(500),
        "{:?}",
        done.duration_since(acknowledged)
    );

    // Three servers lease 150 operations at once: each exactly once.
    let mut submits = Vec::new();
    for i in 0..150 {
        let client = a.client.clone();
        submits.push(tokio::spawn(async move {
            client
                .submit("p", &json!({"type": "Y", "operationId": format!("y{i}")}))
                .await
                .unwrap();
        }));
    }
    for s in submits {
        s.await.unwrap();
    }
    // A page token from one server holds on the others: they share the store's secret.
    let first = a.client.list("p", "", 100, "").await.unwrap();
    let token = first["nextPageToken"].as_str().unwrap().to_string();
    let second = b.client.list("p", "", 100, &token).await.unwrap();
    let third = c.client.list("p", "", 100, &token).await.unwrap();
    assert_eq!(second, third);
    assert_eq!(second["operations"].as_array().unwrap().len(), 51);

    let mut takers = Vec::new();
    for server in [&a, &b, &c] {
        for worker in 0..2 {
            let client = server.client.clone();
            takers.push(tokio::spawn(async move {
                let mut names = Vec::new();
                loop {
                    let body = json!({"types": ["Y"], "maxOperations": 7, "waitTimeout": "0s"});
                    let answer = client
                        .call(
                            http::Method::POST,
                            &format!("/v1/workers/w{worker}:lease"),
                            Some(&body),
                        )
                        .await
                        .unwrap();
                    let Some(leases) = answer["leases"].as_array() else {
                        break;
                    };
                    names.extend(
                        leases
                            .iter()
                            .map(|l| l["operation"]["name"].as_str().unwrap().to_string()),
                    );
                }
                names
            }));
        }
    }
    let mut all = Vec::new();
    for taker in takers {
        all.extend(taker.await.unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(
        (all.len(), unique.len()),
        (150, 150),
        "every operation leased exactly once"
    );

    // Cancel against complete, 1,000 rounds spread across the servers: submit on one, lease
    // and report on another, cancel through the third, with jitter between the racers.
    let servers = [&a, &b, &c];
    let (mut succeeded, mut cancelled) = (0, 0);
    let mut seed = 11u64;
    for round in 0..1000usize {
        let mut jitter = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            Duration::from_micros((seed >> 33) % 3000)
        };
        let (cancel_delay, work_delay) = (jitter(), jitter());
        let (submit_on, work_on, cancel_on) = (
            servers[round % 3],
            servers[(round + 1) % 3],
            servers[(round + 2) % 3],
        );
        let id = format!("r{round}");
        submit_on
            .submit("p", json!({"type": "R", "operationId": id}))
            .await;
        let leased = post(
            work_on,
            "/v1/workers/racer:lease",
            json!({"types": ["R"], "waitTimeout": "0s"}),
        )
        .await;
        let lease_id = leased["leases"][0]["leaseId"].as_str().unwrap().to_string();
        let path = format!("/v1/projects/p/operations/{id}");
        let canceller = {
            let client = cancel_on.client.clone();
            let path = format!("{path}:cancel");
            tokio::spawn(async move {
                tokio::time::sleep(cancel_delay).await;
                client
                    .call(http::Method::POST, &path, Some(&json!({})))
                    .await
                    .unwrap();
            })
        };
        let worker = {
            let client = work_on.client.clone();
            let path = path.clone();
            tokio::spawn(async move {
                tokio::time::sleep(work_delay).await;
                let beat = client
                    .call(
                        http::Method::POST,
                        &format!("{path}:heartbeat"),
                        Some(&json!({"leaseId": lease_id})),
                    )
                    .await
                    .unwrap();
                let saw_cancel = beat["cancelRequested"] == true;
                let result = if saw_cancel {
                    json!({"leaseId": lease_id, "error": {"code": 1, "message": "acknowledged"}})
                } else {
                    json!({"leaseId": lease_id, "response": {}})
                };
                let done = client
                    .call(
                        http::Method::POST,
                        &format!("{path}:complete"),
                        Some(&result),
                    )
                    .await
                    .unwrap();
                (saw_cancel, done)
            })
        };
        canceller.await.unwrap();
        let (saw_cancel, done) = worker.await.unwrap();
        let (_, stored) = submit_on.request("GET", &path, None).await;
        assert_eq!(
            stored, done,
            "round {round}: nothing changes after the completion"
        );
        match (stored["metadata"]["state"].as_str().unwrap(), saw_cancel) {
            ("SUCCEEDED", false) => succeeded += 1,
            ("CANCELLED", true) => cancelled += 1,
            other => panic!("round {round}: {other:?}"),
        }
    }
    assert_eq!(succeeded + cancelled, 1000);
    eprintln!("cross-server races: {succeeded} succeeded, {cancelled} cancelled");

    finish(schema, [a, b, c]).await;
}

/// The Earth Engine emulator's assets live in the same PostgreSQL store: two servers on one
/// database see one registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_on_postgres_are_shared_by_servers() {
    let Some(schema) = Schema::create("assets").await else {
        return;
    };
    let (a, b) = (server_on(schema.url()).await, server_on(schema.url()).await);
    let folder = json!({"type": "FOLDER"}).to_string();
    let (status, _) = a
        .request("POST", "/v1/projects/p/assets?assetId=f", Some(&folder))
        .await;
    assert_eq!(status, 200);
    let (status, _) = b
        .request("POST", "/v1/projects/p/assets?assetId=f/g", Some(&folder))
        .await;
    assert_eq!(status, 200);
    let (status, error) = b
        .request("POST", "/v1/projects/p/assets?assetId=f", Some(&folder))
        .await;
    assert_eq!(
        (status, error["error"]["status"].as_str()),
        (409, Some("ALREADY_EXISTS"))
    );
    let (_, listed) = a
        .request("GET", "/v1/projects/p/assets/f:listAssets", None)
        .await;
    assert_eq!(listed["assets"][0]["name"], "projects/p/assets/f/g");
    let moved = json!({"destinationName": "projects/p/assets/h"}).to_string();
    let (status, _) = a
        .request("POST", "/v1/projects/p/assets/f:move", Some(&moved))
        .await;
    assert_eq!(status, 200);
    let (status, asset) = b.request("GET", "/v1/projects/p/assets/h/g", None).await;
    assert_eq!((status, asset["type"].as_str()), (200, Some("FOLDER")));
    finish(schema, [a, b]).await;
}
