//! A real server on 127.0.0.1:0, started in-process with `longrun_server::run`, and a
//! client for it.

use longrun_client::Client;
use longrun_server::Config;
use serde_json::Value;

/// The longest a test waits for an answer: twice the longest wait the API allows (60 s), so
/// that a hang fails the test that met it, naming the request, instead of stalling the run.
pub const REQUEST_BOUND: std::time::Duration = std::time::Duration::from_secs(120);

/// The longest [`TestServer::stop`] waits for a server to drain.
pub const STOP_BOUND: std::time::Duration = std::time::Duration::from_secs(60);

pub struct TestServer {
    pub base: String,
    pub client: Client,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::with(|_| {}).await
    }

    /// A server whose configuration `configure` changes; its data directory is `data` in a
    /// temporary directory ([`TestServer::dir`]) unless `configure` names another.
    pub async fn with(configure: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().join("data"),
            ..Config::default()
        };
        // The built-in list, as a file: the same list whatever Python is installed, and no
        // interpreter asked at every start.
        config.earthengine.algorithms_file = Some(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../server/assets/algorithms.json"),
        );
        configure(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if config.tls.enabled() {
            "https"
        } else {
            "http"
        };
        let base = format!("{scheme}://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let ended = longrun_server::run(config, listener, async {
                let _ = rx.await;
            })
            .await;
            // Said at once: a client of a server that failed to start only sees a refused
            // connection.
            if let Err(e) = &ended {
                eprintln!("the test server ended with an error: {e:?}");
            }
            ended
        });
        let client = Client::new(&base);
        TestServer {
            base,
            client,
            shutdown: Some(tx),
            task: Some(task),
            dir,
        }
    }

    /// Stops the server and waits for it to drain (a panic after [`STOP_BOUND`]).
    pub async fn stop(mut self) {
        self.shutdown.take().unwrap().send(()).unwrap();
        let task = self.task.take().unwrap();
        let ended = tokio::time::timeout(STOP_BOUND, task)
            .await
            .unwrap_or_else(|_| {
                panic!("the server at {} did not stop in {STOP_BOUND:?}", self.base)
            });
        ended.unwrap().unwrap();
    }

    /// Sends a request; the answer's status and JSON body (`null` when it is not JSON). The
    /// answer is recorded when `LONGRUN_TEST_RESPONSES` is set ([`record`]). A panic when
    /// no answer comes in [`REQUEST_BOUND`].
    pub async fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        let verb = http::Method::from_bytes(method.as_bytes()).unwrap();
        let send = self.client.send(verb, path, body.map(str::as_bytes));
        let response = tokio::time::timeout(REQUEST_BOUND, send)
            .await
            .unwrap_or_else(|_| panic!("no answer to {method} {path} in {REQUEST_BOUND:?}"))
            .unwrap();
        record(method, path, &response);
        (response.status, response.json())
    }

    pub async fn submit(&self, project: &str, body: Value) -> Value {
        let path = format!("/v1/projects/{project}/operations:submit");
        let (status, op) = self.request("POST", &path, Some(&body.to_string())).await;
        assert_eq!(status, 200, "{op}");
        op
    }

    /// Leases up to `max` operations of `types` as worker `worker` without waiting; the
    /// leases (`{"operation", "leaseId", …}`).
    pub async fn lease_now(&self, worker: &str, types: &[&str], max: usize) -> Vec<Value> {
        let body = serde_json::json!({"types": types, "maxOperations": max, "waitTimeout": "0s"});
        let path = format!("/v1/workers/{worker}:lease");
        let (status, answer) = self.request("POST", &path, Some(&body.to_string())).await;
        assert_eq!(status, 200, "{answer}");
        answer["leases"].as_array().cloned().unwrap_or_default()
    }

    /// Completes a lease from [`TestServer::lease_now`] with an empty response.
    pub async fn succeed(&self, leased: &Value) {
        let name = leased["operation"]["name"].as_str().unwrap();
        let body = serde_json::json!({"leaseId": leased["leaseId"], "response": {}});
        let path = format!("/v1/{name}:complete");
        let (status, done) = self.request("POST", &path, Some(&body.to_string())).await;
        assert_eq!(status, 200, "{done}");
    }
}

/// A server on a thread of its own, living as long as the test process, for property tests
/// (each case runs its own runtime): started once per `cell`, configured by `configure`.
pub fn shared(cell: &'static std::sync::OnceLock<String>, configure: fn(&mut Config)) -> String {
    cell.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                let server = TestServer::with(configure).await;
                tx.send(server.base.clone()).unwrap();
                std::future::pending::<()>().await;
            });
        });
        rx.recv().unwrap()
    })
    .clone()
}

/// The variable naming a directory where [`TestServer::request`] records every answer, for
/// scripts/test to check each against the server's OpenAPI document
/// (tests/python/openapi_responses.py).
pub const RESPONSES: &str = "LONGRUN_TEST_RESPONSES";

/// Appends one answer to `$LONGRUN_TEST_RESPONSES/PID.jsonl` as a JSON line: `{"method",
/// "path", "status", "contentType", "body"}` (`body` the text as sent). Nothing when the
/// variable is unset.
fn record(method: &str, path: &str, response: &longrun_client::Response) {
    use std::io::Write;
    use std::sync::{Mutex, OnceLock};
    static FILE: OnceLock<Option<Mutex<std::fs::File>>> = OnceLock::new();
    let file = FILE.get_or_init(|| {
        let dir = std::path::PathBuf::from(std::env::var_os(RESPONSES)?);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.jsonl", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        Some(Mutex::new(file))
    });
    let Some(file) = file else {
        return;
    };
    let content_type = response
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let mut line = serde_json::json!({
        "method": method,
        "path": path,
        "status": response.status,
        "contentType": content_type,
        "body": String::from_utf8_lossy(&response.body),
    })
    .to_string();
    line.push('\n');
    file.lock().unwrap().write_all(line.as_bytes()).unwrap();
}
