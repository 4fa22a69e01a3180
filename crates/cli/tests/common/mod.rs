//! What the binary's tests share: starting `longrun serve` as a child process and running
//! the CLI.
#![allow(dead_code)] // each test file uses its own part of this

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_longrun");

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

    fn spawn(data_dir: &Path, extra: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Server {
        let listen = if extra.contains(&"--allow-unauthenticated") {
            "0.0.0.0:0"
        } else {
            "127.0.0.1:0"
        };
        let mut child = Command::new(BIN)
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
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        // The real port, on the address asked for.
        let host = listen.trim_end_matches('0');
        assert!(
            base.starts_with(&format!("http://{host}")) && !base.ends_with(":0"),
            "{base}"
        );
        Server { child, base }
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

/// Runs `longrun ARGS` with extra environment; returns (success, stdout, stderr).
pub fn longrun(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("LONGRUN_TOKEN")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `longrun operations ARGS` against `base` for project `p`: (exit code, stdout,
/// stderr).
pub fn operations(base: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("operations")
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

/// Runs `longrun ARGS`, which must succeed; returns its stdout.
pub fn longrun_ok(args: &[&str], env: &[(&str, &str)]) -> String {
    let (ok, out, err) = longrun(args, env);
    assert!(ok, "{args:?}: {err}");
    out
}

/// Exchanges a JWT signed with the key file's key at the server's `/token`.
pub async fn access_token(base: &str, key_file: &std::path::Path) -> String {
    let key: serde_json::Value = serde_json::from_slice(&std::fs::read(key_file).unwrap()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = key["private_key_id"].as_str().map(str::to_string);
    let claims = serde_json::json!({
        "iss": key["client_email"], "aud": key["token_uri"], "iat": now, "exp": now + 600,
        "scope": "https://www.googleapis.com/auth/earthengine",
    });
    let private = key["private_key"].as_str().unwrap().as_bytes();
    let assertion = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(private).unwrap(),
    )
    .unwrap();
    let form = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
    );
    let response = longrun_client::Client::new(base)
        .send(http::Method::POST, "/token", Some(form.as_bytes()))
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{:?}", response.json());
    response.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Runs tests/python/SCRIPT with ARGS under the Python `python`: whether it succeeded, and
/// what it printed (stdout, then stderr).
pub fn python(python: &str, script: &str, args: &[&str]) -> (bool, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/python")
        .join(script);
    let out = Command::new(python).arg(path).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Creates the service account NAME of PROJECT in the store of `data` offline, before a
/// server runs on it (a running server holds its data directory), with its key file in
/// `dir`; the key names no real token endpoint until [`point_at`] gives it the server's.
/// Returns the key file's path.
pub fn create_account(data: &Path, name: &str, project: &str, dir: &Path) -> std::path::PathBuf {
    let key = dir.join(format!("{name}.json"));
    longrun_ok(
        &[
            "service-accounts",
            "create",
            name,
            "--project",
            project,
            "--key-file",
            key.to_str().unwrap(),
            "--token-uri",
            "http://127.0.0.1:9/token",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    key
}

/// Points the key file at `server`'s token endpoint, known once the server listens.
pub fn point_at(key: &Path, server: &Server) {
    let mut file: serde_json::Value = serde_json::from_slice(&std::fs::read(key).unwrap()).unwrap();
    file["token_uri"] = format!("{}/token", server.base).into();
    std::fs::write(key, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
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
