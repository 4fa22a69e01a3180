//! Schedules with real server processes (docs/schedules.md): three `longrun serve` on one
//! PostgreSQL fire one schedule every second while one of them is killed and restarted, and
//! every fire time starts exactly one operation; and the `longrun schedules` commands.

use longrun_client::Client;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

use longrun_testkit::postgres::Schema;
use longrun_testkit::process::{Server, bin};

/// Runs `longrun schedules ARGS` against `base`, project p: exit code, stdout, stderr.
fn schedules(base: &str, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(bin())
        .arg("schedules")
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

/// The fire time an operation of a schedule was started for, from its id
/// (`{schedule}-YYYYMMDDTHHMMSSZ`), in Unix seconds.
fn fire_time(op: &Value, schedule_id: &str) -> i64 {
    let name = op["name"].as_str().unwrap();
    let stamp = name
        .strip_prefix(&format!("projects/p/operations/{schedule_id}-"))
        .unwrap_or_else(|| panic!("{name}"));
    let digits = |range: std::ops::Range<usize>| stamp[range].parse::<i64>().unwrap();
    let (year, month, day) = (digits(0..4), digits(4..6), digits(6..8));
    let (hour, minute, second) = (digits(9..11), digits(11..13), digits(13..15));
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hour * 3600 + minute * 60 + second
}

/// Every operation of schedule `name`, through `client`.
async fn operations_of(client: &Client, name: &str) -> Vec<Value> {
    let filter = format!("metadata.schedule = \"{name}\"");
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = client.list("p", &filter, 1000, &token).await.unwrap();
        all.extend(page["operations"].as_array().cloned().unwrap_or_default());
        match page["nextPageToken"].as_str() {
            Some(next) => token = next.to_string(),
            None => return all,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_fire_each_second_once_through_a_kill_and_a_restart() {
    let Some(schema) = Schema::create("schedules").await else {
        return;
    };
    let args = ["--store", "postgres", "--database-url", schema.url()];
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let a = Server::start_with(dirs[0].path(), &args);
    let b = Server::start_with(dirs[1].path(), &args);
    let c = Server::start_with(dirs[2].path(), &args);
    let client = Client::new(&a.base);
    let schedule = client
        .call(
            http::Method::POST,
            "/v1/projects/p/schedules",
            Some(
                &json!({"scheduleId": "tick", "cron": "* * * * * *", "overlapPolicy": "ALLOW",
                         "operation": {"type": "TICK"}}),
            ),
        )
        .await
        .unwrap();
    let name = schedule["name"].as_str().unwrap().to_string();

    tokio::time::sleep(Duration::from_secs(8)).await;
    // One server dies mid-run, without a word; another takes its place a few seconds on.
    b.signal(libc::SIGKILL);
    b.wait_exit(Duration::from_secs(10));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let restarted = Server::start_with(dirs[3].path(), &args);
    tokio::time::sleep(Duration::from_secs(8)).await;

    let paused = Client::new(&c.base)
        .call(
            http::Method::PATCH,
            &format!("/v1/{name}?updateMask=paused"),
            Some(&json!({"paused": true})),
        )
        .await
        .unwrap();
    // A firing under way when the pause was written ends within a moment.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let ops = operations_of(&Client::new(&restarted.base), &name).await;
    let times: Vec<i64> = ops.iter().map(|op| fire_time(op, "tick")).collect();
    let distinct: BTreeSet<i64> = times.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        times.len(),
        "a fire time started twice: {times:?}"
    );
    assert!(times.len() >= 15, "too few firings in 20 s: {times:?}");
    // Every second from the first fire time to the last started one operation: none was
    // lost to the kill, none doubled by the servers racing.
    let (first, last) = (*distinct.first().unwrap(), *distinct.last().unwrap());
    let missing: Vec<i64> = (first..=last).filter(|t| !distinct.contains(t)).collect();
    assert!(
        missing.is_empty(),
        "fire times without an operation: {missing:?}"
    );
    for op in &ops {
        assert_eq!(op["metadata"]["schedule"], name.as_str(), "{op}");
    }
    let after = Client::new(&a.base)
        .call(http::Method::GET, &format!("/v1/{name}"), None)
        .await
        .unwrap();
    assert_eq!(after["paused"], true, "{paused}");
    let last_op = after["lastOperation"].as_str().unwrap();
    assert_eq!(
        fire_time(&json!({"name": last_op}), "tick"),
        last,
        "{after}"
    );
    drop((a, c, restarted));
    schema.remove().await.unwrap();
}

#[test]
fn schedules_commands_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let base = server.base.as_str();
    let json = |out: &str| serde_json::from_str::<Value>(out).unwrap();

    let (code, out, err) = schedules(
        base,
        &[
            "create",
            "nightly",
            "--cron",
            "0 3 * * *",
            "--time-zone",
            "Europe/Paris",
            "--type",
            "EXPORT_IMAGE",
            "--payload",
            r#"{"a": 1}"#,
            "--overlap-policy",
            "cancel-previous",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let created = json(&out);
    assert_eq!(created["name"], "projects/p/schedules/nightly");
    assert_eq!(created["overlapPolicy"], "CANCEL_PREVIOUS");
    assert_eq!(
        created["operation"],
        json!({"type": "EXPORT_IMAGE", "payload": {"a": 1}})
    );

    let (code, out, _) = schedules(base, &["list"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("ID") && out.contains("nightly") && out.contains("Europe/Paris"),
        "{out}"
    );

    let (code, out, _) = schedules(base, &["pause", "nightly", "--format", "json"]);
    assert_eq!((code, json(&out)["paused"].clone()), (0, json!(true)));
    let (code, out, _) = schedules(base, &["describe", "projects/p/schedules/nightly"]);
    assert_eq!(code, 0);
    assert!(out.contains("paused:        true"), "{out}");
    let (code, out, _) = schedules(base, &["resume", "nightly", "--format", "json"]);
    assert_eq!(code, 0);
    assert!(json(&out)["nextFireTime"].is_string(), "{out}");
    let (code, out, err) = schedules(
        base,
        &[
            "update",
            "nightly",
            "--cron",
            "*/5 * * * * *",
            "--operation",
            r#"{"type": "T"}"#,
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (json(&out)["cron"].clone(), json(&out)["operation"].clone()),
        (json!("*/5 * * * * *"), json!({"type": "T"}))
    );

    // Exit codes: 3 invalid argument, 4 not found, 5 already exists, 2 usage.
    let (code, _, err) = schedules(base, &["create", "x", "--cron", "nope", "--type", "T"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("cron"), "{err}");
    let (code, _, _) = schedules(
        base,
        &["create", "nightly", "--cron", "0 3 * * *", "--type", "T"],
    );
    assert_eq!(code, 5);
    let (code, _, _) = schedules(base, &["create", "y", "--cron", "0 3 * * *"]);
    assert_eq!(code, 2);
    let (code, _, _) = schedules(base, &["delete", "nightly"]);
    assert_eq!(code, 0);
    let (code, _, _) = schedules(base, &["describe", "nightly"]);
    assert_eq!(code, 4);
}
