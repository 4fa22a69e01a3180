//! Servers sharing one PostgreSQL: one killed among several, `migrate-store` from SQLite,
//! and clocks that disagree.

use super::name;
use longrun_client::Client;
use longrun_testkit::postgres::Schema;
use longrun_testkit::process::{Server, bin, longrun_ok};
use longrun_types::Name;
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

/// Two servers on one PostgreSQL database; one is killed mid-run. Its worker carries on
/// through the other, and work leased by a worker that died with it is retried there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_among_several_takes_nothing_with_it() {
    let Some(schema) = Schema::create("kill").await else {
        return;
    };
    let scoped = schema.url().to_string();
    let args = ["--store", "postgres", "--database-url", scoped.as_str()];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start_with(dir_a.path(), &args);
    let b = Server::start_with(dir_b.path(), &args);
    let (client_a, client_b) = (Client::new(&a.base), Client::new(&b.base));

    for id in ["live", "dead"] {
        client_a
            .submit("p", &json!({"type": "K", "operationId": id}))
            .await
            .unwrap();
    }
    let lease =
        |duration: &str| json!({"types": ["K"], "waitTimeout": "0s", "leaseDuration": duration});
    let live = client_a
        .call(
            http::Method::POST,
            "/v1/workers/live:lease",
            Some(&lease("60s")),
        )
        .await
        .unwrap();
    let dead = client_a
        .call(
            http::Method::POST,
            "/v1/workers/dead:lease",
            Some(&lease("1s")),
        )
        .await
        .unwrap();
    let live_name = live["leases"][0]["operation"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let live_lease = live["leases"][0]["leaseId"].as_str().unwrap().to_string();
    let dead_name = dead["leases"][0]["operation"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let waiter = {
        let client_b = client_b.clone();
        let name = Name::parse(&live_name).unwrap();
        tokio::spawn(async move {
            client_b
                .wait(&name, Some(Duration::from_secs(20)))
                .await
                .unwrap()
        })
    };

    a.signal(libc::SIGKILL);
    a.wait_exit(Duration::from_secs(10));

    // The live worker reconnects to B and finishes; the wait on B hears it.
    let path = format!("/v1/{live_name}:complete");
    let done = client_b
        .call(
            http::Method::POST,
            &path,
            Some(&json!({"leaseId": live_lease, "response": {"ok": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(done["metadata"]["state"], "SUCCEEDED");
    let waited = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(waited["metadata"]["state"], "SUCCEEDED");

    // The dead worker's lease lapses; B's sweep puts its operation back in the queue.
    let started = Instant::now();
    loop {
        let op = client_b
            .get(&Name::parse(&dead_name).unwrap())
            .await
            .unwrap();
        if op["metadata"]["state"] == "PENDING" {
            assert_eq!(op["metadata"]["attempt"], 2);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never retried: {op}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(b);
    schema.remove().await.unwrap();
}

/// From SQLite to PostgreSQL with `longrun migrate-store`: every operation, asset, schedule,
/// export cap, service account and registration comes across exactly as the API and the CLI
/// showed it, and the server on PostgreSQL carries on with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_store_copies_every_operation_to_postgres() {
    let Some(schema) = Schema::create("migrate").await else {
        return;
    };
    let scoped = schema.url().to_string();

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::new(&server.base);
    for i in 0..40 {
        let body = json!({"type": "T", "operationId": format!("m/{i}"), "requestId": format!("r{i}"),
                          "payload": {"i": i}, "description": format!("op {i}")});
        client
            .submit(if i % 2 == 0 { "p" } else { "q" }, &body)
            .await
            .unwrap();
        if i % 3 == 0 {
            client
                .cancel(
                    &Name::parse(&format!(
                        "projects/{}/operations/m/{i}",
                        if i % 2 == 0 { "p" } else { "q" }
                    ))
                    .unwrap(),
                )
                .await
                .unwrap();
        }
    }
    // The Earth Engine emulator's assets come along too.
    let assets = [
        ("p", "f", "FOLDER"),
        ("p", "f/c", "IMAGE_COLLECTION"),
        ("q", "g", "FOLDER"),
    ];
    for (project, id, kind) in assets {
        let path = format!("/v1/projects/{project}/assets?assetId={id}");
        let body = json!({"type": kind, "properties": {"id": id}}).to_string();
        let made = client
            .send(http::Method::POST, &path, Some(body.as_bytes()))
            .await
            .unwrap();
        assert_eq!(made.status, 200, "{:?}", made.json());
    }
    let asset_of = |client: &Client, project: &str, id: &str| {
        let (client, path) = (
            client.clone(),
            format!("/v1/projects/{project}/assets/{id}"),
        );
        async move {
            let got = client.send(http::Method::GET, &path, None).await.unwrap();
            assert_eq!(got.status, 200, "{path}");
            got.json()
        }
    };
    let mut assets_before = Vec::new();
    for (project, id, _) in assets {
        assets_before.push(asset_of(&client, project, id).await);
    }
    // A schedule (due once a year) and a project's export cap.
    let schedule = json!({"scheduleId": "nightly", "cron": "0 3 1 1 *", "timeZone": "Europe/Paris",
                          "operation": {"type": "T", "payload": {"k": 1}}});
    let made = client
        .send(
            http::Method::POST,
            "/v1/projects/p/schedules",
            Some(schedule.to_string().as_bytes()),
        )
        .await
        .unwrap();
    assert_eq!(made.status, 200, "{:?}", made.json());
    let config = client
        .send(
            http::Method::PATCH,
            "/v1/projects/q/config?updateMask=max_concurrent_exports",
            Some(br#"{"maxConcurrentExports": 7}"#),
        )
        .await
        .unwrap();
    assert_eq!(config.status, 200, "{:?}", config.json());
    let settings_of = |client: &Client| {
        let client = client.clone();
        async move {
            let mut got = Vec::new();
            for path in ["/v1/projects/p/schedules/nightly", "/v1/projects/q/config"] {
                let answer = client.send(http::Method::GET, path, None).await.unwrap();
                assert_eq!(answer.status, 200, "{path}");
                got.push(answer.json());
            }
            got
        }
    };
    let settings_before = settings_of(&client).await;
    let before = [
        client.list("p", "", 1000, "").await.unwrap(),
        client.list("q", "", 1000, "").await.unwrap(),
    ];
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
    // A service account and a registration, made offline.
    let data = dir.path().to_str().unwrap();
    longrun_testkit::auth::create_account(dir.path(), "ci-runner", "p", dir.path());
    let register = [
        "projects",
        "register",
        "p",
        "--plan",
        "commercial",
        "--data-dir",
        data,
    ];
    longrun_ok(&register, &[]);
    let registry = |store: &[&str]| {
        [
            longrun_ok(&[&["service-accounts", "list"], store].concat(), &[]),
            longrun_ok(&[&["projects", "list"], store].concat(), &[]),
        ]
    };
    let registry_before = registry(&["--data-dir", data]);
    assert!(registry_before[0].contains("ci-runner@p.iam.longrun"));

    let out = Command::new(bin())
        .args(["migrate-store", "--from-data-dir"])
        .arg(dir.path())
        .args(["--to-database-url", &scoped])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("copied 40 operations"));
    // A second copy into the same database is refused, not merged.
    let again = Command::new(bin())
        .args(["migrate-store", "--from-data-dir"])
        .arg(dir.path())
        .args(["--to-database-url", &scoped])
        .output()
        .unwrap();
    assert!(!again.status.success());

    let other = tempfile::tempdir().unwrap();
    let server = Server::start_with(
        other.path(),
        &["--store", "postgres", "--database-url", &scoped],
    );
    let client = Client::new(&server.base);
    let after = [
        client.list("p", "", 1000, "").await.unwrap(),
        client.list("q", "", 1000, "").await.unwrap(),
    ];
    assert_eq!(after, before);
    for ((project, id, _), before) in assets.iter().zip(&assets_before) {
        assert_eq!(&asset_of(&client, project, id).await, before);
    }
    // The schedule (its next fire time too), the export cap, the account and the registry.
    let settings_after = settings_of(&client).await;
    assert_eq!(settings_after, settings_before);
    assert_eq!(settings_after[1]["maxConcurrentExports"], 7);
    assert_eq!(registry(&["--database-url", &scoped]), registry_before);
    // Request ids came along: the same submit returns the same operation.
    let same = client
        .submit("q", &json!({"type": "T", "requestId": "r1"}))
        .await
        .unwrap();
    assert_eq!(same["name"], "projects/q/operations/m/1");
    drop(server);
    schema.remove().await.unwrap();
}

/// libfaketime, from Debian's `faketime` package.
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// Two servers on one PostgreSQL whose clocks are 30 s apart (`faketime` on the second):
/// a worker renewing its 5 s lease through the first every 2 s keeps it, and the second
/// server, whose clock is ahead, neither lapses it nor leases the operation to anyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_whose_clocks_disagree_agree_on_leases() {
    let Some(schema) = Schema::create("clocks").await else {
        return;
    };
    assert!(
        std::path::Path::new(LIBFAKETIME).exists(),
        "libfaketime is missing: install Debian's faketime package"
    );
    let scoped = schema.url().to_string();
    let args = ["--store", "postgres", "--database-url", scoped.as_str()];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start_with(dir_a.path(), &args);
    // Its wall clock 30 s ahead; its monotonic clock (timers) left alone.
    let b = Server::start_with_env(
        dir_b.path(),
        &args,
        &[
            ("LD_PRELOAD", LIBFAKETIME),
            ("FAKETIME", "+30s"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ("FAKETIME_NO_CACHE", "1"),
        ],
    );
    let (client_a, client_b) = (Client::new(&a.base), Client::new(&b.base));
    client_a
        .submit(
            "p",
            &json!({"type": "K", "operationId": "renewed", "maxAttempts": 1}),
        )
        .await
        .unwrap();
    let lease = |worker: &str| {
        let body = json!({"types": ["K"], "waitTimeout": "0s", "leaseDuration": "5s"});
        (format!("/v1/workers/{worker}:lease"), body)
    };
    let (path, body) = lease("first");
    let leased = client_a
        .call(http::Method::POST, &path, Some(&body))
        .await
        .unwrap();
    let lease_id = leased["leases"][0]["leaseId"].as_str().unwrap().to_string();
    let beat = json!({"leaseId": lease_id});
    let (path_b, body_b) = lease("second");
    // 12 s: more than twice the lease, renewed every 2 s through A, while B, its clock
    // ahead by six leases, sweeps five times a second and is asked for work throughout.
    let started = Instant::now();
    let mut renewed = Instant::now();
    while started.elapsed() < Duration::from_secs(12) {
        if renewed.elapsed() >= Duration::from_secs(2) {
            client_a
                .call(
                    http::Method::POST,
                    "/v1/projects/p/operations/renewed:heartbeat",
                    Some(&beat),
                )
                .await
                .unwrap_or_else(|e| panic!("the lease was lost at {:?}: {e}", started.elapsed()));
            renewed = Instant::now();
        }
        let stolen = client_b
            .call(http::Method::POST, &path_b, Some(&body_b))
            .await
            .unwrap();
        assert!(
            stolen.get("leases").is_none(),
            "a second worker got it at {:?}: {stolen}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let done = client_a
        .call(
            http::Method::POST,
            "/v1/projects/p/operations/renewed:complete",
            Some(&json!({"leaseId": lease_id, "response": {"ok": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(done["metadata"]["state"], "SUCCEEDED", "{done}");
    assert_eq!(done["metadata"]["attempt"], 1);
    // Both serve the same times: the lease's end on B is A's, not 30 s later.
    let seen_b = client_b.get(&name("renewed")).await.unwrap();
    assert_eq!(seen_b["metadata"]["endTime"], done["metadata"]["endTime"]);
    drop((a, b));
    schema.remove().await.unwrap();
}
