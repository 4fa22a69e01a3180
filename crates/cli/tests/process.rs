//! The `longrun` binary as users run it: start on port 0, SIGTERM, kill -9 and restart on
//! the same data directory, and the `operations` commands with their exit codes.

use longrun_client::Client;
use longrun_types::Name;
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{BIN, Schema, Server, operations};

fn name(id: &str) -> Name {
    Name::parse(&format!("projects/p/operations/{id}")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::new(&server.base);
    let mut tasks = Vec::new();
    for i in 0..60 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let op = client
                .submit("p", &json!({"type": "T", "operationId": format!("op{i}")}))
                .await
                .unwrap();
            if i % 2 == 0 {
                client.cancel(&name(&format!("op{i}"))).await.unwrap();
            }
            op
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    // Every write above was acknowledged; die without any chance to flush.
    server.signal(libc::SIGKILL);
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(!status.success());

    let server = Server::start(dir.path());
    let client = Client::new(&server.base);
    for i in 0..60 {
        let op = client.get(&name(&format!("op{i}"))).await.unwrap();
        let expected = if i % 2 == 0 { "CANCELLED" } else { "PENDING" };
        assert_eq!(op["metadata"]["state"], expected, "op{i}");
        if i % 2 == 0 {
            assert_eq!(op["done"], true);
            assert_eq!(op["error"]["code"], 1);
            assert!(op["metadata"]["endTime"].is_string());
        }
    }
    let page = client.list("p", "", 1000, "").await.unwrap();
    assert_eq!(page["operations"].as_array().unwrap().len(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_and_cancels_survive_a_restart_and_nothing_stays_cancelling() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[[task_type]]\ntype = \"T\"\ncancel_grace = \"1s\"\n",
    )
    .unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let data = dir.path().join("data");
    let server = Server::start_with(&data, &args);
    let client = Client::new(&server.base);
    client
        .submit("p", &json!({"type": "T", "operationId": "x"}))
        .await
        .unwrap();
    let lease_request = json!({"types": ["T"], "waitTimeout": "0s", "leaseDuration": "600s"});
    let leased = client
        .call(
            http::Method::POST,
            "/v1/workers/w:lease",
            Some(&lease_request),
        )
        .await
        .unwrap();
    let lease_id = leased["leases"][0]["leaseId"].as_str().unwrap().to_string();
    client.cancel(&name("x")).await.unwrap();
    server.signal(libc::SIGKILL);
    server.wait_exit(Duration::from_secs(10));

    let server = Server::start_with(&data, &args);
    let client = Client::new(&server.base);
    let op = client.get(&name("x")).await.unwrap();
    assert_eq!(op["metadata"]["state"], "CANCELLING");
    // The lease outlived the restart: the worker's next heartbeat learns of the cancel.
    let beat = client
        .call(
            http::Method::POST,
            "/v1/projects/p/operations/x:heartbeat",
            Some(&json!({"leaseId": lease_id})),
        )
        .await
        .unwrap();
    assert_eq!(beat["cancelRequested"], true);
    // The worker ignores it; past the grace the operation ends CANCELLED.
    let op = client
        .wait(&name("x"), Some(Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(op["metadata"]["state"], "CANCELLED");
    assert_eq!(op["error"]["code"], 1);
    let late = client
        .call(
            http::Method::POST,
            "/v1/projects/p/operations/x:complete",
            Some(&json!({"leaseId": lease_id, "response": {}})),
        )
        .await
        .unwrap_err();
    assert!(late.to_string().contains("ABORTED"), "{late}");
}

/// Processes whose command line contains `needle`.
fn processes_with(needle: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| {
            String::from_utf8_lossy(c)
                .replace('\0', " ")
                .contains(needle)
        })
        .count()
}

/// A config file in `dir` with a `command` type `JOB` whose first run sleeps `seconds` (a
/// needle to find it by) and whose later runs succeed at once, and the payload that runs it.
fn first_run_sleeps(
    dir: &std::path::Path,
    seconds: &str,
) -> (std::path::PathBuf, serde_json::Value) {
    let config = dir.join("config.toml");
    let marker = dir.join("first-run");
    std::fs::write(
        &config,
        format!(
            "[[task_type]]\ntype = \"JOB\"\nexecutor = \"command\"\n\
             command = [\"sh\", \"-c\", \"if [ -e {{payload.marker}} ]; then exit 0; fi; touch {{payload.marker}}; sleep {seconds}\"]\n"
        ),
    )
    .unwrap();
    (config, json!({"marker": marker.to_str().unwrap()}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_takes_its_commands_along_and_retries_them_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (config, payload) = first_run_sleeps(dir.path(), "43.19");
    let args = ["--config", config.to_str().unwrap()];
    let data = dir.path().join("data");
    let server = Server::start_with(&data, &args);
    let client = Client::new(&server.base);
    client
        .submit(
            "p",
            &json!({"type": "JOB", "operationId": "job", "payload": payload}),
        )
        .await
        .unwrap();
    let started = Instant::now();
    while processes_with("sleep 43.19") == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the command never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Mid-run: the server has recorded the command's process group.
    let groups = data.join("command-groups");
    while std::fs::read_dir(&groups).map_or(0, |d| d.count()) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the group was never recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.signal(libc::SIGKILL);
    server.wait_exit(Duration::from_secs(10));

    // The restart kills what the command left behind; the dead lease lapses and the
    // operation runs again, and succeeds.
    let server = Server::start_with(&data, &args);
    let restarted = Instant::now();
    while processes_with("sleep 43.19") > 0 {
        assert!(
            restarted.elapsed() < Duration::from_secs(3),
            "the command outlived the restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = Client::new(&server.base);
    let op = client.get(&name("job")).await.unwrap();
    assert_eq!(op["metadata"]["state"], "RUNNING");
    let op = client
        .wait(&name("job"), Some(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(op["metadata"]["state"], "SUCCEEDED", "{op}");
    assert_eq!(op["metadata"]["attempt"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_waits_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::new(&server.base);
    client
        .submit("p", &json!({"type": "T", "operationId": "x"}))
        .await
        .unwrap();
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move { client.wait(&name("x"), Some(Duration::from_secs(60))).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.signal(libc::SIGTERM);
    let op = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(op["metadata"]["state"], "PENDING");
    let status = server.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    // The data directory holds the database and the secret.
    assert!(dir.path().join("longrun.db").exists());
    assert!(dir.path().join("secret").exists());
}

/// A data directory is one server's while it runs: a second `longrun serve` on it exits at
/// once, naming it, and the commands that open its store offline refuse, pointing at
/// `--server`; once the server stops they work.
#[test]
fn a_data_directory_is_one_servers_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let data_dir = data.to_str().unwrap();
    let in_use = format!("the data directory {data_dir} is in use");
    let holder = format!("process {}", server.child.id());
    let mut second = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(10) {
            let _ = second.kill();
            let _ = second.wait();
            panic!("a second server on one data directory is serving");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "{stderr}");
    assert!(
        stderr.contains(&in_use) && stderr.contains(&holder),
        "{stderr}"
    );
    let offline = [
        &["service-accounts", "list", "--data-dir", data_dir][..],
        &["projects", "list", "--data-dir", data_dir][..],
    ];
    for args in offline {
        let (ok, _, err) = common::longrun(args, &[]);
        assert!(!ok, "{args:?}");
        assert!(err.contains(&in_use) && err.contains("--server"), "{err}");
    }
    let target = dir.path().join("copy");
    let migrate = [
        "migrate-store",
        "--from-data-dir",
        data_dir,
        "--to-data-dir",
        target.to_str().unwrap(),
    ];
    let (ok, _, err) = common::longrun(&migrate, &[]);
    assert!(!ok && err.contains(&in_use), "{err}");
    drop(server);
    for args in offline {
        common::longrun_ok(args, &[]);
    }
    common::longrun_ok(&migrate, &[]);
}

/// A server whose open-file limit is low (128, soft and hard) still answers `/healthz`
/// while 150 clients hold connections open and send nothing: it takes no more connections
/// than the limit leaves room for, closes idle ones, and goes on accepting.
#[test]
fn idle_connections_past_the_open_file_limit_do_not_stop_the_server() {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[connections]\nidle_timeout = \"1s\"\n").unwrap();
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("LONGRUN_LOG", "error")
        .stdout(std::process::Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 128,
                rlim_max: 128,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_string();
    let server = common::Server {
        child,
        base: format!("http://{address}"),
    };
    let idle: Vec<std::net::TcpStream> = (0..150)
        .map(|_| std::net::TcpStream::connect(&address).unwrap())
        .collect();
    let started = Instant::now();
    let mut health = std::net::TcpStream::connect(&address).unwrap();
    health
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    health
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut answer = String::new();
    let _ = health.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 200 OK"),
        "no answer after {:?}: {answer:?}",
        started.elapsed()
    );
    drop(idle);
    drop(server);
}

#[test]
fn a_non_loopback_listener_needs_an_explicit_opt_out() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("without authentication"), "{stderr}");
    let server = Server::start_with(dir.path(), &["--allow-unauthenticated"]);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_commands_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let base = server.base.as_str();

    let (code, out, _) = operations(
        base,
        &[
            "submit",
            "--type",
            "EXPORT_IMAGE",
            "--description",
            "nightly",
            "--operation-id",
            "jobs/a",
        ],
    );
    assert_eq!((code, out.trim()), (0, "projects/p/operations/jobs/a"));
    let (code, out, _) = operations(
        base,
        &[
            "submit",
            "--type",
            "T",
            "--payload",
            "{\"seconds\": 5}",
            "--priority",
            "5",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0);
    let op: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(op["metadata"]["priority"], 5);

    let (code, out, _) = operations(base, &["list"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[0].starts_with("ID") && lines[0].contains("STATE"));
    assert!(out.contains("jobs/a") && out.contains("nightly") && out.contains("PENDING"));
    let (code, out, _) = operations(
        base,
        &[
            "list",
            "--format",
            "json",
            "--filter",
            "metadata.type = EXPORT_IMAGE",
        ],
    );
    assert_eq!(code, 0);
    let ops: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ops.as_array().unwrap().len(), 1);

    let (code, out, _) = operations(base, &["describe", "jobs/a"]);
    assert_eq!(code, 0);
    assert!(out.contains("state:       PENDING"), "{out}");
    let (code, _, _) = operations(base, &["wait", "jobs/a", "--timeout", "100ms"]);
    assert_eq!(code, 12, "not done at the timeout");
    let (code, _, err) = operations(base, &["delete", "jobs/a"]);
    assert_eq!(code, 3, "{err}");
    let (code, out, _) = operations(base, &["cancel", "projects/p/operations/jobs/a"]);
    assert_eq!(
        (code, out.trim()),
        (0, "cancellation requested for projects/p/operations/jobs/a")
    );
    let (code, _, _) = operations(base, &["wait", "jobs/a"]);
    assert_eq!(code, 11, "cancelled");
    let (code, _, _) = operations(base, &["delete", "jobs/a"]);
    assert_eq!(code, 0);
    let (code, _, err) = operations(base, &["describe", "jobs/a"]);
    assert_eq!(code, 4);
    assert!(err.contains("NOT_FOUND"), "{err}");
    let (code, _, _) = operations(base, &["submit", "--type", "T", "--operation-id", "dup"]);
    assert_eq!(code, 0);
    let (code, _, _) = operations(base, &["submit", "--type", "T", "--operation-id", "dup"]);
    assert_eq!(code, 5);
    let (code, _, _) = operations(base, &["submit", "--type", "T", "--priority", "10000"]);
    assert_eq!(code, 3);
    let (code, _, err) = operations("http://127.0.0.1:1", &["list"]);
    assert_eq!(code, 1, "{err}");
}

/// `wait --timeout` longer than the server's `wait.max` keeps waiting (the call is repeated)
/// until the operation is done, or until the client's own deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_outlasts_the_servers_cap() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_config(
        dir.path(),
        "[wait]\nmax = \"1s\"\ndefault = \"1s\"\n\n[[task_type]]\ntype = \"SLOW\"\n\
         executor = \"simulate\"\nduration = \"2500ms\"\n",
    );
    let base = server.base.as_str();
    let (code, _, _) = operations(
        base,
        &["submit", "--type", "SLOW", "--operation-id", "slow"],
    );
    assert_eq!(code, 0);
    let started = Instant::now();
    let (code, out, err) = operations(base, &["wait", "slow", "--timeout", "30s"]);
    let waited = started.elapsed();
    assert_eq!(code, 0, "SUCCEEDED after the server's cap: {out}{err}");
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(10),
        "{waited:?}"
    );
    // Nothing to wait for: the client's own deadline ends it, past the server's cap.
    let (code, _, _) = operations(
        base,
        &["submit", "--type", "NOBODY", "--operation-id", "idle"],
    );
    assert_eq!(code, 0);
    let started = Instant::now();
    let (code, _, _) = operations(base, &["wait", "idle", "--timeout", "2500ms"]);
    let waited = started.elapsed();
    assert_eq!(code, 12);
    assert!(
        waited >= Duration::from_millis(2400) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
}

/// Two servers on one PostgreSQL database; one is killed mid-run. Its worker carries on
/// through the other, and work leased by a worker that died with it is retried there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_among_several_takes_nothing_with_it() {
    let Some(schema) = Schema::create("kill").await else {
        return;
    };
    let scoped = schema.url.clone();
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
    schema.drop_schema().await;
}

/// From SQLite to PostgreSQL with `longrun migrate-store`: every operation comes across
/// exactly as the API showed it, and the server on PostgreSQL carries on with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_store_copies_every_operation_to_postgres() {
    let Some(schema) = Schema::create("migrate").await else {
        return;
    };
    let scoped = schema.url.clone();

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
    let before = [
        client.list("p", "", 1000, "").await.unwrap(),
        client.list("q", "", 1000, "").await.unwrap(),
    ];
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());

    let out = Command::new(BIN)
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
    let again = Command::new(BIN)
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
    // Request ids came along: the same submit returns the same operation.
    let same = client
        .submit("q", &json!({"type": "T", "requestId": "r1"}))
        .await
        .unwrap();
    assert_eq!(same["name"], "projects/q/operations/m/1");
    drop(server);
    schema.drop_schema().await;
}

/// A process's start time in clock ticks since boot (field 22 of `/proc/PID/stat`).
fn start_time(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 1..];
    after_name
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap()
}

fn alive(child: &mut std::process::Child) -> bool {
    child.try_wait().unwrap().is_none()
}

#[test]
fn a_restart_ends_only_leftovers_proven_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let groups = data.join("command-groups");
    std::fs::create_dir_all(&groups).unwrap();
    // Two unrelated processes stand where a crashed server's commands were recorded: one
    // whose id was reused (its start time is not the recorded one), and, for contrast, one
    // whose record holds its real start time (a leftover of ours, as far as proof goes).
    let mut reused = std::process::Command::new("sleep")
        .arg("45.01")
        .spawn()
        .unwrap();
    let mut leftover = std::process::Command::new("sleep")
        .arg("45.02")
        .spawn()
        .unwrap();
    let record = |child: &std::process::Child, started: u64| {
        let pid = child.id();
        std::fs::write(
            groups.join(pid.to_string()),
            format!("{pid} {started}\nsleep"),
        )
        .unwrap();
    };
    record(&reused, start_time(reused.id()) + 1);
    record(&leftover, start_time(leftover.id()));
    // A record of the previous format (a bare process group id) is not proof either.
    std::fs::write(groups.join(reused.id().to_string() + "-old"), "").unwrap();
    let server = Server::start(&data);
    let started = Instant::now();
    while alive(&mut leftover) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the leftover lives"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(alive(&mut reused), "an unrelated process was killed");
    assert_eq!(std::fs::read_dir(&groups).unwrap().count(), 0);
    drop(server);
    let _ = reused.kill();
    let _ = reused.wait();
}

/// The highest resident set size of a process so far, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200_mb_line_does_not_grow_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[[task_type]]\ntype = \"LINE\"\nexecutor = \"command\"\n\
         command = [\"sh\", \"-c\", \"head -c 200000000 /dev/zero | tr '\\\\0' x\"]\n",
    )
    .unwrap();
    let server = Server::start_with(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let client = Client::new(&server.base);
    let before = peak_rss(server.child.id());
    client
        .submit("p", &json!({"type": "LINE", "operationId": "line"}))
        .await
        .unwrap();
    let op = client
        .wait(&name("line"), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(op["metadata"]["state"], "SUCCEEDED", "{op}");
    let grown = peak_rss(server.child.id()).saturating_sub(before);
    assert!(grown < 32 << 20, "the server grew by {} MB", grown >> 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_releases_the_work_in_flight_without_spending_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let (config, payload) = first_run_sleeps(dir.path(), "45.31");
    let args = ["--config", config.to_str().unwrap()];
    let data = dir.path().join("data");
    let server = Server::start_with(&data, &args);
    let client = Client::new(&server.base);
    client
        .submit(
            "p",
            &json!({"type": "JOB", "operationId": "job", "payload": payload, "maxAttempts": 1}),
        )
        .await
        .unwrap();
    let started = Instant::now();
    while processes_with("sleep 45.31") == 0 {
        assert!(started.elapsed() < Duration::from_secs(10), "never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The deploy: SIGTERM mid-run. The command stops with the server, and the operation
    // goes back to the queue as it was, its one attempt unspent.
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
    assert_eq!(processes_with("sleep 45.31"), 0);
    let store = longrun_store_sqlite::SqliteStore::open(&data.join("longrun.db")).unwrap();
    let op = longrun_store::Operations::get(&store, &name("job"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(op.state, longrun_types::State::Pending, "{op:?}");
    assert!(op.outcome.is_none(), "{op:?}");
    drop(store);

    let server = Server::start_with(&data, &args);
    let client = Client::new(&server.base);
    let op = client
        .wait(&name("job"), Some(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(op["metadata"]["state"], "SUCCEEDED", "{op}");
    assert_eq!(op["metadata"]["attempt"], 2);
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
    let scoped = schema.url.clone();
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
    schema.drop_schema().await;
}
