//! The built-in `command` executor: exit codes, the stdout progress protocol, CPU seconds,
//! cancel with SIGTERM then SIGKILL, and no process left behind.

use crate::common::TestServer;
use longrun_server::config::{Executor, TaskType};
use longrun_testkit::process::processes_with;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn command_type(op_type: &str, argv: &[&str], grace: Duration) -> TaskType {
    TaskType {
        executor: Executor::Command,
        command: argv.iter().map(|a| a.to_string()).collect(),
        cancel_grace: grace,
        ..TaskType::new(op_type)
    }
}

async fn server() -> TestServer {
    TestServer::with(|c| {
        c.task_types.push(command_type(
            "SH",
            &["sh", "-c", "{payload.script}"],
            Duration::from_secs(1),
        ));
        c.task_types.push(command_type(
            "SLEEP",
            &["sleep", "{payload.seconds}"],
            Duration::from_secs(30),
        ));
    })
    .await
}

async fn wait(s: &TestServer, id: &str) -> Value {
    let path = format!("/v1/projects/p/operations/{id}:wait");
    let (status, op) = s
        .request("POST", &path, Some(r#"{"timeout": "20s"}"#))
        .await;
    assert_eq!(status, 200);
    op
}

async fn until_running(s: &TestServer, id: &str) {
    let started = Instant::now();
    loop {
        let (_, op) = s
            .request("GET", &format!("/v1/projects/p/operations/{id}"), None)
            .await;
        if op["metadata"]["state"] == "RUNNING" {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never ran: {op}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_failure_and_the_progress_protocol() {
    let s = server().await;
    let script = "echo longrun:progress 0.5; echo longrun:stage Tiling 3/10; echo ignored; \
                  echo longrun:destination file:///out/a.tif; \
                  i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done";
    s.submit(
        "p",
        json!({"type": "SH", "operationId": "ok", "payload": {"script": script}}),
    )
    .await;
    let op = wait(&s, "ok").await;
    assert_eq!(op["metadata"]["state"], "SUCCEEDED", "{op}");
    assert_eq!(op["response"]["value"], json!({"exitCode": 0}));
    assert_eq!(op["metadata"]["progress"], 0.5);
    assert_eq!(
        op["metadata"]["stages"],
        json!([{"displayName": "Tiling", "completeWorkUnits": "3", "totalWorkUnits": "10"}])
    );
    assert_eq!(
        op["metadata"]["destinationUris"],
        json!(["file:///out/a.tif"])
    );
    assert!(
        op["metadata"]["batchEecuUsageSeconds"].as_f64().unwrap() > 0.0,
        "{op}"
    );

    s.submit(
        "p",
        json!({"type": "SH", "operationId": "bad", "payload": {"script": "echo oops >&2; exit 3"}}),
    )
    .await;
    let op = wait(&s, "bad").await;
    assert_eq!(op["metadata"]["state"], "FAILED");
    assert_eq!(op["error"]["code"], 2);
    let message = op["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("exit status 3") && message.contains("oops"),
        "{message}"
    );

    // A payload without the argv's placeholder is refused at submit.
    let (status, body) = s
        .request(
            "POST",
            "/v1/projects/p/operations:submit",
            Some(r#"{"type": "SLEEP", "payload": {}}"#),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("payload.seconds")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_the_command_and_leaves_no_process() {
    let s = server().await;
    s.submit(
        "p",
        json!({"type": "SLEEP", "operationId": "nap", "payload": {"seconds": "41.37"}}),
    )
    .await;
    until_running(&s, "nap").await;
    let started = Instant::now();
    while processes_with("sleep 41.37").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the command never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cancelled_at = Instant::now();
    s.request("POST", "/v1/projects/p/operations/nap:cancel", Some("{}"))
        .await;
    let op = wait(&s, "nap").await;
    assert_eq!(op["metadata"]["state"], "CANCELLED", "{op}");
    assert!(cancelled_at.elapsed() < Duration::from_secs(2));
    assert!(processes_with("sleep 41.37").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_ignores_sigterm_is_killed_after_the_grace() {
    let s = server().await;
    let script = "trap '' TERM; sleep 42.71; true";
    s.submit(
        "p",
        json!({"type": "SH", "operationId": "stubborn", "payload": {"script": script}}),
    )
    .await;
    until_running(&s, "stubborn").await;
    let started = Instant::now();
    while processes_with("sleep 42.71").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the command never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let the shell install its trap.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let cancelled_at = Instant::now();
    s.request(
        "POST",
        "/v1/projects/p/operations/stubborn:cancel",
        Some("{}"),
    )
    .await;
    let op = wait(&s, "stubborn").await;
    assert_eq!(op["metadata"]["state"], "CANCELLED", "{op}");
    let took = cancelled_at.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    // The executor's SIGKILL and the server's revocation of the lease share the grace; either
    // may record the end, and either way the whole group is gone.
    let message = op["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("signal 9") || message.contains("grace"),
        "{op}"
    );
    let started = Instant::now();
    while !processes_with("sleep 42.71").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the command outlived its grace"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Files under the outputs directory.
fn outputs(data_dir: &std::path::Path) -> usize {
    std::fs::read_dir(data_dir.join("outputs")).map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outputs_of_operations_gone_by_retention_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let start = || {
        let data_dir = data_dir.clone();
        TestServer::with(move |c| {
            c.data_dir = data_dir;
            c.task_types.push(command_type(
                "SH",
                &["sh", "-c", "{payload.script}"],
                Duration::from_secs(1),
            ));
        })
    };
    let s = start().await;
    for id in ["kept", "expired"] {
        s.submit(
            "p",
            json!({"type": "SH", "operationId": id, "payload": {"script": format!("echo {id}")}}),
        )
        .await;
        assert_eq!(wait(&s, id).await["metadata"]["state"], "SUCCEEDED");
    }
    // Each output and the file naming its operation.
    assert_eq!(outputs(&data_dir), 4);
    // Deleting one through the API removes its output at once.
    let (status, _) = s
        .request("DELETE", "/v1/projects/p/operations/kept", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(outputs(&data_dir), 2);
    s.stop().await;

    // Retention ends the other while no server runs; the next start finds its output.
    let store =
        longrun_store_sqlite::SqliteStore::open(&data_dir.join(longrun_server::DATABASE_FILE))
            .unwrap();
    let far = longrun_types::Timestamp::now().plus_millis(86_400_000);
    let expired = longrun_store::Operations::expire(&store, far, 100)
        .await
        .unwrap();
    assert_eq!(expired.len(), 1);
    drop(store);
    let s = start().await;
    let started = Instant::now();
    while outputs(&data_dir) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "outputs left: {}",
            outputs(&data_dir)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.stop().await;
}

/// Waits until no process's command line contains any of `needles`.
async fn until_gone(needles: &[&str], within: Duration) {
    let started = Instant::now();
    loop {
        let left: Vec<String> = needles.iter().flat_map(|n| processes_with(n)).collect();
        if left.is_empty() {
            return;
        }
        assert!(started.elapsed() < within, "left behind: {left:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_that_leave_children_behind_end_with_them_and_never_stall_the_server() {
    let s = server().await;
    // A background child in the group, one in a session of its own, a nohup'd one and a
    // double-forked daemon: each keeps the output pipes open after the shell exits.
    let scripts = [
        ("bg", "sleep 44.01 & echo started"),
        ("setsid", "setsid sleep 44.02 & echo started"),
        ("nohup", "nohup sleep 44.03 & echo started"),
        ("daemon", "(setsid sh -c 'sleep 44.04' &) ; echo started"),
    ];
    let started = Instant::now();
    for (id, script) in scripts {
        s.submit(
            "p",
            json!({"type": "SH", "operationId": id, "payload": {"script": script}}),
        )
        .await;
    }
    // The runtime is never blocked: the server answers while the commands run and end.
    let (status, _) = s.request("GET", "/healthz", None).await;
    assert_eq!(status, 200);
    for (id, _) in scripts {
        let op = wait(&s, id).await;
        assert_eq!(op["metadata"]["state"], "SUCCEEDED", "{op}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    until_gone(
        &["sleep 44.01", "sleep 44.02", "sleep 44.03", "sleep 44.04"],
        Duration::from_secs(3),
    )
    .await;
    let (status, _) = s.request("GET", "/healthz", None).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_the_processes_that_left_the_group() {
    let s = server().await;
    let script = "setsid sleep 44.11 & sleep 44.12; wait";
    s.submit(
        "p",
        json!({"type": "SH", "operationId": "escaped", "payload": {"script": script}}),
    )
    .await;
    until_running(&s, "escaped").await;
    let started = Instant::now();
    while processes_with("sleep 44.11").is_empty() || processes_with("sleep 44.12").is_empty() {
        assert!(started.elapsed() < Duration::from_secs(5), "never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.request(
        "POST",
        "/v1/projects/p/operations/escaped:cancel",
        Some("{}"),
    )
    .await;
    let op = wait(&s, "escaped").await;
    assert_eq!(op["metadata"]["state"], "CANCELLED", "{op}");
    until_gone(&["sleep 44.11", "sleep 44.12"], Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_without_newlines_is_read_and_kept_within_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let s = TestServer::with({
        let data_dir = data_dir.clone();
        move |c| {
            c.data_dir = data_dir;
            c.task_types.push(command_type(
                "SH",
                &["sh", "-c", "{payload.script}"],
                Duration::from_secs(1),
            ));
        }
    })
    .await;
    // 8 MiB on one line, then a protocol line: the long line is skipped, the next applies.
    let script = "head -c 8388608 /dev/zero | tr '\\0' x; echo; echo longrun:progress 0.25";
    s.submit(
        "p",
        json!({"type": "SH", "operationId": "long-line", "payload": {"script": script}}),
    )
    .await;
    let op = wait(&s, "long-line").await;
    assert_eq!(op["metadata"]["state"], "SUCCEEDED", "{op}");
    assert_eq!(op["metadata"]["progress"], 0.25, "{op}");
    let name = longrun_types::Name::parse("projects/p/operations/long-line").unwrap();
    let kept = std::fs::read(longrun_worker::command::output_path(
        &data_dir.join("outputs"),
        &name,
    ))
    .unwrap();
    let limit = longrun_worker::command::OUTPUT_LIMIT;
    assert_eq!(kept.len(), limit + b"\n[output truncated]\n".len());
    assert!(kept[..limit].iter().all(|b| *b == b'x'));
}

/// A `command` type the executor cannot run (no argv, an empty program) is refused as the
/// server starts, with a message naming the type, instead of serving and panicking at the
/// first submit of that type.
#[tokio::test]
async fn a_command_type_it_cannot_run_is_refused_at_start() {
    for (argv, says) in [
        (
            &[][..],
            "task type NOARGV: executor = \"command\" needs `command`",
        ),
        (
            &["", "x"][..],
            "task type NOARGV: the first word of `command`",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = longrun_server::Config {
            data_dir: dir.path().join("data"),
            task_types: vec![command_type("NOARGV", argv, Duration::from_secs(1))],
            ..Default::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let served = tokio::spawn(longrun_server::run(
            config,
            listener,
            std::future::pending(),
        ));
        // A server that started anyway gets the submit that used to panic it.
        let submit = async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let client = longrun_client::Client::new(&base);
            let body = json!({"type": "NOARGV", "operationId": "x"}).to_string();
            let answer = client
                .send(
                    http::Method::POST,
                    "/v1/projects/p/operations:submit",
                    Some(body.as_bytes()),
                )
                .await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            answer.map(|r| r.status)
        };
        tokio::select! {
            ended = served => {
                let error = ended.unwrap().expect_err("a config the executor cannot run");
                assert!(format!("{error:#}").contains(says), "{error:#}");
            }
            submitted = submit => panic!("the server started and answered the submit {submitted:?}"),
        }
    }
}
