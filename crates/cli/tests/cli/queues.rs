//! `longrun queues …` against a real server process (docs/queues.md): list, describe,
//! pause and resume, in tables and JSON, with their exit codes.

use longrun_client::Client;
use longrun_testkit::process::{Server, bin};
use serde_json::{Value, json};

/// Runs `longrun queues ARGS` against `base`, project p: exit code, stdout, stderr.
fn queues(base: &str, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(bin())
        .arg("queues")
        .args(args)
        .args(["--server", base, "--project", "p"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_commands_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let base = server.base.clone();
    let client = Client::new(&base);
    for _ in 0..2 {
        client
            .submit("p", &json!({"type": "EXPORT IMAGE"}))
            .await
            .unwrap();
    }
    let json = |out: &str| serde_json::from_str::<Value>(out).unwrap();
    let run = |args: &'static [&'static str]| {
        let base = base.clone();
        async move {
            tokio::task::spawn_blocking(move || queues(&base, args))
                .await
                .unwrap()
        }
    };

    // A type with a space travels percent-encoded.
    let (code, out, err) = run(&["pause", "EXPORT IMAGE", "--format", "json"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        json(&out),
        json!({"name": "projects/p/queues/EXPORT IMAGE", "state": "PAUSED",
               "pendingCount": "2", "runningCount": "0",
               "oldestPendingTime": json(&out)["oldestPendingTime"].clone()})
    );
    let (code, out, _) = run(&["list"]).await;
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("TYPE") && lines[0].contains("OLDEST PENDING"),
        "{out}"
    );
    assert!(lines[1].starts_with("EXPORT IMAGE  PAUSED  2"), "{out}");

    let (code, out, _) = run(&["describe", "projects/p/queues/-", "--format", "json"]).await;
    assert_eq!((code, json(&out)["pendingCount"].clone()), (0, json!("2")));
    let (code, _, err) = run(&["pause", "-"]).await;
    assert_eq!(code, 0, "{err}");
    // One type cannot be resumed while the whole project is paused: exit 3.
    let (code, _, err) = run(&["resume", "EXPORT IMAGE"]).await;
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("resume projects/p/queues/- first"), "{err}");
    let (code, _, _) = run(&["resume", "-"]).await;
    assert_eq!(code, 0);
    let (code, out, _) = run(&["describe", "EXPORT IMAGE", "--format", "json"]).await;
    assert_eq!((code, json(&out)["state"].clone()), (0, json!("RUNNING")));
    // Usage: a full name that is no queue's.
    let (code, _, err) = run(&["describe", "projects/p/schedules/x"]).await;
    assert_eq!(code, 2, "{err}");
}
