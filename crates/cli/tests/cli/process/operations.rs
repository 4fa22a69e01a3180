//! The `operations` commands and their exit codes.

use longrun_testkit::process::{Server, operations};
use std::time::{Duration, Instant};

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

/// `operations batch-submit`: JSON lines from a file in batches of 1,000, each whole or not
/// at all; a bad line fails before anything is sent.
#[test]
fn batch_submit_reads_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let base = server.base.as_str();
    let lines: Vec<String> = (0..1500)
        .map(|i| {
            format!(r#"{{"type": "LINE", "operationId": "l{i:04}", "payload": {{"i": {i}}}}}"#)
        })
        .collect();
    let file = dir.path().join("work.jsonl");
    std::fs::write(&file, lines.join("\n") + "\n\n").unwrap();
    let file = file.to_str().unwrap();
    let (code, out, err) = operations(base, &["batch-submit", "--file", file]);
    assert_eq!(code, 0, "{err}");
    let names: Vec<&str> = out.lines().collect();
    assert_eq!(names.len(), 1500);
    assert_eq!(names[0], "projects/p/operations/l0000");
    assert_eq!(names[1499], "projects/p/operations/l1499");
    // Again: every id is taken, the first batch is refused whole (exit 5).
    let (code, _, err) = operations(base, &["batch-submit", "--file", file]);
    assert_eq!(code, 5, "{err}");
    assert!(err.contains("0 submitted in earlier batches"), "{err}");
    // A line that is not JSON: nothing is sent (exit 3).
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"type\": \"LINE\", \"operationId\": \"x\"}\nnot json\n",
    )
    .unwrap();
    let (code, _, err) = operations(base, &["batch-submit", "--file", bad.to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("line 2"), "{err}");
    let (code, _, _) = operations(base, &["describe", "x"]);
    assert_eq!(code, 4);
}

/// `submit --parent` and `list --parent` (docs/operations.md#parents-and-children): the
/// parent by id or full name; a cancelled parent takes its children with it and takes no
/// more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_are_submitted_and_listed_under_their_parent() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let base = server.base.as_str();
    let submit = |args: &[&str]| {
        let mut all = vec!["submit"];
        all.extend_from_slice(args);
        operations(base, &all)
    };
    let (code, _, err) = submit(&["--type", "RENDER", "--operation-id", "film"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = submit(&["--type", "FRAME", "--parent", "film", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let child: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(child["metadata"]["parent"], "projects/p/operations/film");
    assert_eq!(child["metadata"]["waitingReason"], "PARENT");
    let (code, _, err) = submit(&["--type", "FRAME", "--parent", "projects/p/operations/film"]);
    assert_eq!(code, 0, "{err}");
    submit(&["--type", "OTHER"]);

    let (code, out, _) = operations(base, &["list", "--parent", "film", "--format", "json"]);
    assert_eq!(code, 0);
    let children: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(children.as_array().unwrap().len(), 2, "{out}");
    let (code, out, _) = operations(
        base,
        &[
            "list",
            "--parent",
            "film",
            "--filter",
            "metadata.type = OTHER",
        ],
    );
    assert_eq!(
        (code, out.lines().count()),
        (0, 1),
        "the header only: {out}"
    );

    let id = child["name"].as_str().unwrap();
    let (code, out, _) = operations(base, &["describe", id]);
    assert_eq!(code, 0);
    assert!(
        out.contains("parent:      projects/p/operations/film"),
        "{out}"
    );

    let (code, _, _) = operations(base, &["cancel", "film"]);
    assert_eq!(code, 0);
    let (code, _, _) = operations(base, &["wait", "film", "--timeout", "20s"]);
    assert_eq!(code, 11, "cancelled");
    let (code, out, _) = operations(
        base,
        &[
            "list",
            "--parent",
            "film",
            "--filter",
            "metadata.state = CANCELLED",
        ],
    );
    assert_eq!((code, out.lines().count()), (0, 3), "{out}");
    let (code, _, err) = submit(&["--type", "FRAME", "--parent", "film"]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("PARENT_NOT_OPEN") || err.contains("FAILED_PRECONDITION"),
        "{err}"
    );
}

/// `list` gives scripts every page (stdout is not a terminal here), `--limit` stops early
/// with a note on stderr, `--page-size` sets the requests' size, and `--server` takes an
/// address without a scheme.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pages_limits_and_a_server_without_a_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let bare = server.base.trim_start_matches("http://").to_string();
    for i in 0..5 {
        let id = format!("op{i}");
        let (code, _, err) = operations(&bare, &["submit", "--type", "T", "--operation-id", &id]);
        assert_eq!(code, 0, "{err}");
    }
    let (code, out, err) = operations(&server.base, &["list", "--page-size", "2"]);
    assert_eq!((code, out.lines().count()), (0, 6), "every page: {out}");
    assert!(!err.contains("more exist"), "{err}");
    let (code, out, err) = operations(&server.base, &["list", "--limit", "3", "--page-size", "2"]);
    assert_eq!((code, out.lines().count()), (0, 4), "{out}");
    assert!(err.contains("more exist"), "{err}");
    let (code, _, err) = operations(&server.base, &["list", "--page-size", "0"]);
    assert_eq!(code, 2, "{err}");
}

/// `describe` shows what a worker reported (stages, destinations), the response, and the
/// payload, which only `operationPayloads.get` answers: never a get or a list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_reports_the_response_and_the_payload() {
    use serde_json::{Value, json};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let base = server.base.as_str();
    let (code, _, err) = operations(
        base,
        &[
            "submit",
            "--type",
            "T",
            "--operation-id",
            "shown",
            "--payload",
            r#"{"table": "trips", "year": 2026}"#,
        ],
    );
    assert_eq!(code, 0, "{err}");
    let client = longrun_client::Client::new(base);
    let call = |path: &str, body: Value| {
        let client = client.clone();
        let path = path.to_string();
        async move {
            client
                .call(http::Method::POST, &path, Some(&body))
                .await
                .unwrap()
        }
    };
    let leased = call(
        "/v1/workers/w:lease",
        json!({"types": ["T"], "maxOperations": 1, "waitTimeout": "5s"}),
    )
    .await;
    let lease_id = leased["leases"][0]["leaseId"].as_str().unwrap().to_string();
    call(
        "/v1/projects/p/operations/shown:heartbeat",
        json!({"leaseId": lease_id, "stages": [{"displayName": "Copy", "completeWorkUnits": 1,
            "totalWorkUnits": 2, "description": "rows"}], "destinationUris": ["gs://b/out"]}),
    )
    .await;
    call(
        "/v1/projects/p/operations/shown:complete",
        json!({"leaseId": lease_id, "response": {"rows": 3}}),
    )
    .await;

    let (code, out, err) = operations(base, &["describe", "shown"]);
    assert_eq!(code, 0, "{err}");
    for expected in [
        "state:       SUCCEEDED",
        "stages:\n  Copy  1/2  rows",
        "destinations:\n  gs://b/out",
        "response:",
        "\"rows\": 3",
        "payload:",
        "\"table\": \"trips\"",
        "\"year\": 2026",
    ] {
        assert!(out.contains(expected), "{expected:?} not in:\n{out}");
    }
    // The payload is its own read; a get and a list never carry it.
    let payload = client
        .payload(&longrun_types::Name::parse("projects/p/operations/shown").unwrap())
        .await
        .unwrap();
    assert_eq!(payload["payload"], json!({"table": "trips", "year": 2026}));
    let (_, listed, _) = operations(base, &["list", "--format", "json"]);
    let (_, got, _) = operations(base, &["describe", "shown", "--format", "json"]);
    assert!(
        !listed.contains("trips") && !got.contains("trips"),
        "{listed}\n{got}"
    );
    let missing = client
        .payload(&longrun_types::Name::parse("projects/p/operations/none").unwrap())
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("NOT_FOUND"), "{missing}");
}
