//! `longrun operations watch`, `batch-cancel`, `retry` and `batch-retry` against a real
//! server (docs/watch.md, docs/operations.md).

use longrun_testkit::process::{Server, bin, operations};
use serde_json::Value;
use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

fn submit(base: &str, op_type: &str, id: &str) {
    let (code, _, err) = operations(base, &["submit", "--type", op_type, "--operation-id", id]);
    assert_eq!(code, 0, "{err}");
}

/// A running `longrun operations watch`, read a line at a time with a deadline.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Watch {
    fn start(base: &str, args: &[&str]) -> Watch {
        let mut child = Command::new(bin())
            .args(["operations", "watch", "--server", base, "--project", "p"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout: Lines<BufReader<ChildStdout>> =
            BufReader::new(child.stdout.take().unwrap()).lines();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        Watch { child, lines }
    }

    fn line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a line from watch within 10 s")
    }

    /// The next `--format json` event: (event, data).
    fn event(&self) -> (String, Value) {
        let line = self.line();
        let event: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        (
            event["event"].as_str().unwrap().to_string(),
            event["data"].clone(),
        )
    }

    /// The next table line about the operation `id`.
    fn line_of(&self, id: &str) -> String {
        loop {
            let line = self.line();
            if line.split_whitespace().nth(1) == Some(id) {
                return line;
            }
        }
    }

    fn nothing_more(&self) {
        if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(300)) {
            panic!("unexpected line {line:?}");
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The snapshot of the matching operations, `synced`, then each change as it happens:
/// a cancel, a delete; operations outside the filter never appear.
#[test]
fn watch_prints_the_snapshot_then_every_change() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let base = server.base.as_str();
    submit(base, "T", "a");
    submit(base, "T", "b");
    submit(base, "OTHER", "c");

    let watch = Watch::start(
        base,
        &["--filter", "metadata.type = \"T\"", "--format", "json"],
    );
    let mut snapshot: Vec<String> = (0..2)
        .map(|_| {
            let (event, op) = watch.event();
            assert_eq!(event, "operation", "{op}");
            assert_eq!(op["metadata"]["state"], "PENDING");
            op["name"].as_str().unwrap().to_string()
        })
        .collect();
    snapshot.sort();
    assert_eq!(
        snapshot,
        ["projects/p/operations/a", "projects/p/operations/b"]
    );
    assert_eq!(watch.event().0, "synced");

    submit(base, "OTHER", "d");
    assert_eq!(operations(base, &["cancel", "a"]).0, 0);
    let (event, op) = watch.event();
    assert_eq!(
        (
            event.as_str(),
            &op["name"],
            &op["metadata"]["state"],
            &op["done"]
        ),
        (
            "operation",
            &Value::from("projects/p/operations/a"),
            &Value::from("CANCELLED"),
            &Value::Bool(true)
        )
    );
    assert_eq!(operations(base, &["delete", "a"]).0, 0);
    let (event, data) = watch.event();
    assert_eq!(
        (event.as_str(), &data["name"]),
        ("deleted", &Value::from("projects/p/operations/a"))
    );
    watch.nothing_more();

    // The table form: a line per operation, state first; --changes-only skips the snapshot.
    let table = Watch::start(base, &["--filter", "metadata.type = \"T\""]);
    let line = table.line();
    assert!(
        line.starts_with("PENDING") && line.contains(" b  T"),
        "{line:?}"
    );
    let changes = Watch::start(base, &["--changes-only", "--format", "json"]);
    let (event, _) = changes.event();
    assert_eq!(event, "synced", "no snapshot before it");
    submit(base, "T", "e");
    let (event, op) = changes.event();
    assert_eq!(
        (event.as_str(), &op["name"]),
        ("operation", &Value::from("projects/p/operations/e"))
    );
    let line = table.line_of("e");
    assert!(line.starts_with("PENDING"), "{line:?}");
}

/// `batch-cancel --wait` cancels every match that is not done and prints the counts; without
/// `--wait` it prints the BATCH_CANCEL operation's name; an empty filter is the server's 400.
#[test]
fn batch_cancel_cancels_the_matches_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let base = server.base.as_str();
    for i in 0..5 {
        submit(base, "T", &format!("t{i}"));
    }
    submit(base, "KEEP", "k");
    assert_eq!(operations(base, &["cancel", "t0"]).0, 0);

    let (code, out, err) = operations(
        base,
        &[
            "batch-cancel",
            "--filter",
            "metadata.type = \"T\"",
            "--wait",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "matched 5, cancelled 4, already done 1");
    let (_, out, _) = operations(base, &["list", "--format", "json", "--limit", "0"]);
    let ops: Vec<Value> = serde_json::from_str(&out).unwrap();
    let state = |id: &str| {
        ops.iter()
            .find(|op| op["name"] == format!("projects/p/operations/{id}"))
            .map(|op| op["metadata"]["state"].as_str().unwrap().to_string())
            .unwrap()
    };
    for i in 0..5 {
        assert_eq!(state(&format!("t{i}")), "CANCELLED");
    }
    assert_eq!(state("k"), "PENDING");

    let (code, out, _) = operations(
        base,
        &["batch-cancel", "--filter", "metadata.type = \"KEEP\""],
    );
    assert_eq!(code, 0);
    let name = out.trim();
    assert!(name.starts_with("projects/p/operations/"), "{out}");
    let (code, out, _) = operations(base, &["wait", name, "--format", "json"]);
    assert_eq!(code, 0);
    let op: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(op["response"]["cancelledCount"], "1", "{op}");

    let (code, _, err) = operations(base, &["batch-cancel", "--filter", ""]);
    assert_eq!(code, 3, "INVALID_ARGUMENT: {err}");
}

/// `retry` prints the new operation's name (`--operation-id`, `--request-id` as on submit);
/// not done exits 3; `batch-retry --wait` retries every done match and prints the counts.
#[test]
fn retry_and_batch_retry_run_done_operations_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let base = server.base.as_str();
    for id in ["r0", "r1", "r2"] {
        submit(base, "R", id);
    }
    let (code, _, err) = operations(base, &["retry", "r0"]);
    assert_eq!(code, 3, "FAILED_PRECONDITION: {err}");
    for id in ["r0", "r1"] {
        assert_eq!(operations(base, &["cancel", id]).0, 0);
    }
    let args = [
        "retry",
        "r0",
        "--operation-id",
        "again",
        "--request-id",
        "q",
    ];
    let (code, out, err) = operations(base, &args);
    assert_eq!(
        (code, out.trim()),
        (0, "projects/p/operations/again"),
        "{err}"
    );
    let (code, out, _) = operations(base, &["retry", "r0", "--request-id", "q"]);
    assert_eq!((code, out.trim()), (0, "projects/p/operations/again"));
    let (_, out, _) = operations(base, &["describe", "again", "--format", "json"]);
    let op: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        op["metadata"]["retryOf"], "projects/p/operations/r0",
        "{op}"
    );

    // r0 and r1 are done, r2 and the retry are not.
    let (code, out, err) = operations(
        base,
        &["batch-retry", "--filter", "metadata.type = R", "--wait"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), "matched 4, retried 2, not done 2");
    let (_, out, _) = operations(
        base,
        &[
            "list",
            "--format",
            "json",
            "--filter",
            "metadata.retryOf = \"projects/p/operations/r1\"",
        ],
    );
    let retries: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(retries.len(), 1, "{out}");
    let (code, _, err) = operations(base, &["batch-retry", "--filter", ""]);
    assert_eq!(code, 3, "INVALID_ARGUMENT: {err}");
}
