//! `longrun serve` as a child process, the CLI's commands, and the processes a test looks
//! for in `/proc`. The binary is the `longrun` Cargo builds beside the test binary: the
//! tests of `longrun-cli` have it built.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The `longrun` binary of this build: beside the test binary's directory (`…/debug/deps`).
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let test = std::env::current_exe().unwrap();
        let path = test
            .parent()
            .and_then(Path::parent)
            .map(|dir| dir.join("longrun"))
            .unwrap();
        assert!(
            path.is_file(),
            "no longrun binary at {} (the tests of longrun-cli build it)",
            path.display()
        );
        path
    })
}

/// A running `longrun serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    /// Starts `longrun serve` and waits for its `listening on` line.
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_with_env(data_dir, extra, &[])
    }

    /// `start_with`, with extra environment for the server process.
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn(data_dir, extra, env, Stdio::inherit())
    }

    /// `start_with_config_env` with the server's stderr (its log) piped: read it from
    /// `child.stderr`.
    pub fn start_logging(data_dir: &Path, config: &str, env: &[(&str, &str)]) -> Server {
        let path = data_dir.with_extension("toml");
        std::fs::write(&path, config).unwrap();
        let extra = ["--config", path.to_str().unwrap()];
        Server::spawn(data_dir, &extra, env, Stdio::piped())
    }

    /// Starts `longrun serve` on `data_dir` with `config` written beside it.
    pub fn start_with_config(data_dir: &Path, config: &str) -> Server {
        Server::start_with_config_env(data_dir, config, &[])
    }

    /// Starts `longrun serve` on `data_dir` with `config` and extra environment variables.
    pub fn start_with_config_env(data_dir: &Path, config: &str, env: &[(&str, &str)]) -> Server {
        let path = data_dir.with_extension("toml");
        std::fs::write(&path, config).unwrap();
        Server::start_with_env(data_dir, &["--config", path.to_str().unwrap()], env)
    }

    fn spawn(data_dir: &Path, extra: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Server {
        let listen = if extra.contains(&"--allow-unauthenticated") {
            "0.0.0.0:0"
        } else {
            "127.0.0.1:0"
        };
        let mut child = Command::new(bin())
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("LONGRUN_LOG", "warn")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let base = listening(&mut child);
        // Held before anything is checked, so that a failed check still ends the child.
        let server = Server { child, base };
        // The real port, on the address asked for.
        let host = listen.trim_end_matches('0');
        let address = server
            .base
            .strip_prefix("http://")
            .or_else(|| server.base.strip_prefix("https://"));
        assert!(
            address.is_some_and(|a| a.starts_with(host) && !a.ends_with(":0")),
            "{}",
            server.base
        );
        server
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
    }

    pub fn wait_exit(mut self, within: Duration) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < within,
                "server did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The base URL a `longrun serve` child prints on its first line (`listening on URL`); its
/// stdout must be piped.
pub fn listening(child: &mut Child) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string()
}

/// Runs `longrun ARGS` with extra environment; returns (success, stdout, stderr).
pub fn longrun(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let (code, out, err) = longrun_exit(args, env);
    (code == 0, out, err)
}

/// `longrun`, with the exit code (-1 when a signal ended it).
pub fn longrun_exit(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(bin())
        .args(args)
        .env_remove("LONGRUN_TOKEN")
        .env_remove("LONGRUN_KEY_FILE")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `longrun ARGS`, which must succeed; returns its stdout.
pub fn longrun_ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let (ok, out, err) = longrun(args, env);
    assert!(ok, "{args:?}: {err}");
    out
}

/// Runs `longrun operations ARGS` against `base` for project `p`: (exit code, stdout,
/// stderr).
pub fn operations(base: &str, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["operations"];
    all.extend(args);
    all.extend(["--server", base, "--project", "p"]);
    longrun_exit(&all, &[])
}

/// The command lines (NULs as spaces) of the processes whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(needle) {
                found.push(cmdline);
            }
        }
    }
    found
}

/// A schema of its own on the test PostgreSQL (`LONGRUN_TEST_DATABASE_URL`), for servers to
/// share; `None` (with a notice) when no database is configured.
pub struct Schema {
    pub admin: tokio_postgres::Client,
    pub name: String,
    /// The database URL with the schema as its search path, for `--database-url`.
    pub url: String,
}

impl Schema {
    pub async fn create(prefix: &str) -> Option<Schema> {
        let Ok(url) = std::env::var("LONGRUN_TEST_DATABASE_URL") else {
            eprintln!("skipped: set LONGRUN_TEST_DATABASE_URL to run servers on PostgreSQL");
            return None;
        };
        let name = format!("longrun_{prefix}_{}", std::process::id());
        let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        admin
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
            .await
            .unwrap();
        let separator = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{separator}options=-c%20search_path%3D{name}");
        Some(Schema { admin, name, url })
    }

    pub async fn drop_schema(self) {
        self.admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await
            .unwrap();
    }
}
