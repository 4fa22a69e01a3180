//! The data directory: one server at a time (a second one on it fails to start, naming it),
//! and private to its owner (the directory 0700; the database, its WAL and shared-memory
//! files and the secret 0600), also when an earlier version left them open to others.

use crate::common::TestServer;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The files a running server keeps in its data directory, with their modes.
fn modes(data_dir: &Path) -> Vec<(String, u32)> {
    let mut modes = vec![(".".to_string(), mode(data_dir))];
    for file in ["longrun.db", "longrun.db-wal", "longrun.db-shm", "secret"] {
        modes.push((file.to_string(), mode(&data_dir.join(file))));
    }
    modes
}

/// What [`modes`] answers for a private data directory.
fn private() -> Vec<(String, u32)> {
    let mut private = vec![(".".to_string(), 0o700)];
    for file in ["longrun.db", "longrun.db-wal", "longrun.db-shm", "secret"] {
        private.push((file.to_string(), 0o600));
    }
    private
}

/// Runs a server on `data_dir` on a new port for at most `within`: `Err` with its error if
/// it fails, `Ok` if it is still serving then (it is left running).
async fn second_server(data_dir: &Path, within: Duration) -> Result<(), String> {
    let config = longrun_server::Config {
        data_dir: data_dir.to_path_buf(),
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let served = tokio::spawn(longrun_server::run(
        config,
        listener,
        std::future::pending(),
    ));
    match tokio::time::timeout(within, served).await {
        Ok(ended) => Err(format!("{:#}", ended.unwrap().expect_err("it ended"))),
        Err(_) => Ok(()),
    }
}

#[tokio::test]
async fn a_second_server_on_one_data_directory_fails_to_start() {
    let mut s = TestServer::start().await;
    s.submit("p", json!({"type": "T", "operationId": "a"}))
        .await;
    let data_dir = s.dir.path().join("data");
    let error = second_server(&data_dir, Duration::from_secs(5))
        .await
        .expect_err("a second server on one data directory");
    let wanted = format!("the data directory {} is in use", data_dir.display());
    assert!(error.contains(&wanted), "{error}");
    assert!(error.contains("holds its lock"), "{error}");
    // The first is unharmed, and once stopped it leaves the directory to the next.
    let (status, _) = s.request("GET", "/v1/projects/p/operations/a", None).await;
    assert_eq!(status, 200);
    // The directory outlives the server.
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    s.stop().await;
    let kept = dir.path().join("data");
    second_server(&kept, Duration::from_secs(2)).await.unwrap();
}

#[tokio::test]
async fn the_data_directory_and_its_files_are_private() {
    let mut s = TestServer::start().await;
    s.submit("p", json!({"type": "T", "operationId": "a"}))
        .await;
    let data_dir = s.dir.path().join("data");
    assert_eq!(modes(&data_dir), private());

    // Files left open to others (by an earlier version, say) are made private at open.
    // The directory outlives the server.
    let dir = std::mem::replace(&mut s.dir, tempfile::tempdir().unwrap());
    s.stop().await;
    let kept = dir.path().join("data");
    set_mode(&kept, 0o755);
    for file in ["longrun.db", "secret"] {
        set_mode(&kept.join(file), 0o644);
    }
    for file in ["longrun.db-wal", "longrun.db-shm"] {
        std::fs::write(kept.join(file), "").unwrap();
        set_mode(&kept.join(file), 0o644);
    }
    second_server(&kept, Duration::from_secs(2)).await.unwrap();
    assert_eq!(modes(&kept), private());
}
