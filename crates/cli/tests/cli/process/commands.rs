//! The processes the `command` executor starts: ended with a killed server and by the
//! restart after it, released on a deploy, and no larger server for a huge output line.

use super::name;
use longrun_client::Client;
use longrun_testkit::process::{Server, processes_with};
use serde_json::json;
use std::time::{Duration, Instant};

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
    while processes_with("sleep 43.19").is_empty() {
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
    while !processes_with("sleep 43.19").is_empty() {
        assert!(
            restarted.elapsed() < Duration::from_secs(3),
            "the command outlived the restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = Client::new(&server.base);
    let op = client.get(&name("job")).await.unwrap();
    assert_eq!(op["metadata"]["state"], "RUNNING");
    // The dead lease lapses 30 s after the first start, then the second run ends at once:
    // waits until then, with room for a loaded machine.
    let op = client
        .wait(&name("job"), Some(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(op["metadata"]["state"], "SUCCEEDED", "{op}");
    assert_eq!(op["metadata"]["attempt"], 2);
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
    while processes_with("sleep 45.31").is_empty() {
        assert!(started.elapsed() < Duration::from_secs(10), "never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The deploy: SIGTERM mid-run. The command stops with the server, and the operation
    // goes back to the queue as it was, its one attempt unspent.
    server.signal(libc::SIGTERM);
    assert!(server.wait_exit(Duration::from_secs(10)).success());
    assert_eq!(processes_with("sleep 45.31"), Vec::<String>::new());
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
