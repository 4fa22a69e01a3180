//! Storage that fails under a running server: a full disk (the data directory on a small
//! tmpfs, filled) and a failing fsync (fsync returning EIO, through a preloaded shim). In
//! both, writes answer 503 UNAVAILABLE and never acknowledge what is not on disk; reads keep
//! working; the server recovers by itself when the cause goes away; and after a kill -9
//! every acknowledged operation is there, intact.
//!
//! The full disk needs root (to mount a tmpfs) and the shim needs a C compiler; without
//! them each test says so and skips.

use longrun_client::Client;
use longrun_testkit::process::Server;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs of `size` mounted on `dir`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Submits an operation with a large description: its name if acknowledged, else the error's
/// HTTP status and google.rpc status.
async fn submit(client: &Client, id: &str) -> Result<String, (u16, String)> {
    let body = json!({"type": "NOBODY", "operationId": id, "description": description(id)});
    match client.submit("p", &body).await {
        Ok(op) => Ok(op["name"].as_str().unwrap().to_string()),
        Err(longrun_client::Error::Api {
            http_status,
            status_name,
            ..
        }) => Err((http_status, status_name)),
        Err(e) => panic!("{id}: {e}"),
    }
}

fn description(id: &str) -> String {
    format!("{id}:{}", "x".repeat(20_000))
}

/// Every acknowledged operation is readable and intact.
async fn all_there(client: &Client, acknowledged: &[String]) {
    for name in acknowledged {
        let op: Value = client
            .get(&longrun_types::Name::parse(name).unwrap())
            .await
            .unwrap_or_else(|e| panic!("{name} was acknowledged and is gone: {e}"));
        let id = name.rsplit('/').next().unwrap();
        assert_eq!(op["metadata"]["description"], description(id), "{name}");
    }
}

/// After a kill -9 and a restart, the acknowledged operations are there, and nothing else.
async fn survives_kill_9(server: Server, data: &Path, acknowledged: &[String]) {
    server.signal(libc::SIGKILL);
    drop(server);
    let server = Server::start(data);
    let client = Client::new(&server.base);
    all_there(&client, acknowledged).await;
    let page = client.list("p", "", 1000, "").await.unwrap();
    assert_eq!(
        page["operations"].as_array().unwrap().len(),
        acknowledged.len()
    );
}

/// Submits until the store refuses; every refusal must be 503 UNAVAILABLE.
async fn fill(client: &Client, prefix: &str, acknowledged: &mut Vec<String>) -> usize {
    for i in 0..2_000 {
        match submit(client, &format!("{prefix}{i:04}")).await {
            Ok(name) => acknowledged.push(name),
            Err((status, name)) => {
                assert_eq!((status, name.as_str()), (503, "UNAVAILABLE"));
                return i;
            }
        }
    }
    panic!("the store never refused a write");
}

/// Retries a submit until it is acknowledged (the server recovers by itself).
async fn recovers(client: &Client, id: &str, acknowledged: &mut Vec<String>) {
    let started = Instant::now();
    loop {
        match submit(client, id).await {
            Ok(name) => return acknowledged.push(name),
            Err((status, _)) => {
                assert_eq!(status, 503);
                assert!(started.elapsed() < Duration::from_secs(10), "no recovery");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_is_503_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_mount) = Tmpfs::mount(&dir.path().join("small"), "3m") else {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    };
    let data = dir.path().join("small/data");
    // Room to give back once the disk is full.
    let ballast = dir.path().join("small/ballast");
    std::fs::write(&ballast, vec![0u8; 768 * 1024]).unwrap();
    let server = Server::start(&data);
    let client = Client::new(&server.base);

    let mut acknowledged = Vec::new();
    let accepted = fill(&client, "full-", &mut acknowledged).await;
    assert!(
        accepted >= 10,
        "only {accepted} writes before the disk was full"
    );
    // Reads keep working while writes cannot.
    all_there(&client, &acknowledged).await;
    let page = client.list("p", "", 1000, "").await.unwrap();
    assert_eq!(
        page["operations"].as_array().unwrap().len(),
        acknowledged.len()
    );
    let cancel = client
        .cancel(&longrun_types::Name::parse(&acknowledged[0]).unwrap())
        .await;
    match cancel {
        Ok(_) => {}
        Err(longrun_client::Error::Api { http_status, .. }) => assert_eq!(http_status, 503),
        Err(e) => panic!("{e}"),
    }
    // The emulator's asset registry answers a full disk with 503 too (a folder with 256 KiB
    // of properties cannot fit in what is left: less than a submit's write, which the
    // failed writes above may have left allocated).
    let folder = serde_json::json!({"type": "FOLDER", "properties": {"n": "x".repeat(256 * 1024)}});
    let made = client
        .send(
            http::Method::POST,
            "/v1/projects/p/assets?assetId=full-folder",
            Some(folder.to_string().as_bytes()),
        )
        .await
        .unwrap();
    assert!(made.status == 503, "{}", made.status);

    std::fs::remove_file(&ballast).unwrap();
    recovers(&client, "after-space-returned", &mut acknowledged).await;

    survives_kill_9(server, &data, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_fsync_is_503_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let shim = dir.path().join("failing_fsync.so");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/failing_fsync.c");
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&shim)
        .arg(&source)
        .arg("-ldl")
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        eprintln!("skipped: no C compiler to build the fsync shim");
        return;
    }
    let flag = dir.path().join("fail-fsync");
    let data = dir.path().join("data");
    let env = [
        ("LD_PRELOAD", shim.to_str().unwrap()),
        ("LONGRUN_TEST_FAIL_FSYNC", flag.to_str().unwrap()),
    ];
    let server = Server::start_with_env(&data, &[], &env);
    let client = Client::new(&server.base);
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        acknowledged.push(submit(&client, &format!("before-{i}")).await.unwrap());
    }

    std::fs::write(&flag, b"").unwrap();
    for i in 0..5 {
        assert_eq!(
            submit(&client, &format!("during-{i}")).await,
            Err((503, "UNAVAILABLE".into()))
        );
    }
    all_there(&client, &acknowledged).await;

    std::fs::remove_file(&flag).unwrap();
    recovers(&client, "after", &mut acknowledged).await;
    // What was refused was not written: its id is free.
    recovers(&client, "during-0", &mut acknowledged).await;

    survives_kill_9(server, &data, &acknowledged).await;
}
