//! Routing and request errors: every one in Google's envelope, never a 5xx for a client
//! mistake, and garbage never panics the server.

use crate::common::{TestServer, envelope};
use serde_json::json;

#[tokio::test]
async fn unknown_paths_methods_and_verbs() {
    let s = TestServer::start().await;
    s.submit("p", json!({"type": "T", "operationId": "x"}))
        .await;
    let (status, body) = s.request("GET", "/v2/projects/p/operations", None).await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        envelope(
            404,
            "NOT_FOUND",
            "PATH_NOT_FOUND",
            "no method is served at /v2/projects/p/operations",
            json!({"path": "/v2/projects/p/operations"})
        )
    );
    // `/` is the task manager page (docs/watch.md#the-task-manager-page).
    for path in [
        "/v1",
        "/v1/projects/p",
        "/v1/projects/p/things/x",
        "/nothing",
    ] {
        let (status, body) = s.request("GET", path, None).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["error"]["status"], "NOT_FOUND");
    }
    let (status, body) = s
        .request("POST", "/v1/projects/p/operations/x:explode", Some("{}"))
        .await;
    assert_eq!(
        (status, body["error"]["details"][0]["reason"].clone()),
        (404, json!("PATH_NOT_FOUND"))
    );

    for (method, path, allow) in [
        ("PUT", "/v1/projects/p/operations/x", "GET, DELETE"),
        ("PATCH", "/v1beta/projects/p/operations/x", "GET, DELETE"),
        ("POST", "/v1/projects/p/operations/x", "GET, DELETE"),
        ("DELETE", "/v1/projects/p/operations", "GET"),
        ("GET", "/v1/projects/p/operations:submit", "POST"),
        // The fixed routes beside the API too (found by fuzzing: a bare 405 without the
        // envelope), for any method token.
        ("PUT", "/$discovery/rest", "GET"),
        ("0ET", "/$discovery/rest", "GET"),
        ("POST", "/healthz", "GET"),
        ("GET", "/token", "POST"),
        ("DELETE", "/batch", "POST"),
    ] {
        let method = http::Method::from_bytes(method.as_bytes()).unwrap();
        let response = s.client.send(method.clone(), path, None).await.unwrap();
        assert_eq!(response.status, 405, "{method} {path}");
        assert_eq!(response.headers["allow"], allow);
        let body = response.json();
        assert_eq!(body["error"]["code"], 405);
        assert_eq!(body["error"]["status"], "UNIMPLEMENTED");
        assert_eq!(body["error"]["details"][0]["reason"], "METHOD_NOT_ALLOWED");
    }
    let (status, body) = s
        .request("GET", "/v1/projects/p/operations/a//b", None)
        .await;
    assert_eq!(
        (status, body["error"]["details"][0]["reason"].clone()),
        (400, json!("INVALID_NAME"))
    );
    let (status, body) = s.request("GET", "/healthz", None).await;
    assert_eq!((status, body), (200, json!({"status": "SERVING"})));
}

#[tokio::test]
async fn bodies_over_one_mebibyte_are_413() {
    let s = TestServer::start().await;
    let big = format!(r#"{{"type":"T","description":"{}"}}"#, "x".repeat(1 << 20));
    let (status, body) = s
        .request("POST", "/v1/projects/p/operations:submit", Some(&big))
        .await;
    assert_eq!(status, 413);
    assert_eq!(
        body,
        envelope(
            413,
            "INVALID_ARGUMENT",
            "REQUEST_TOO_LARGE",
            "the request body exceeds 1048576 bytes",
            json!({"limit": "1048576"})
        )
    );
    // Just under the limit is read (and then judged on its content).
    let fits = format!(
        r#"{{"type":"T","payload":"{}"}}"#,
        "x".repeat((1 << 20) - 100)
    );
    let (status, _) = s
        .request("POST", "/v1/projects/p/operations:submit", Some(&fits))
        .await;
    assert_eq!(status, 200);
}

/// A small deterministic generator, so that failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn text(&mut self, alphabet: &[u8], max: usize) -> String {
        let len = self.next() as usize % max;
        (0..len)
            .map(|_| alphabet[self.next() as usize % alphabet.len()] as char)
            .collect()
    }
}

#[tokio::test]
async fn garbage_filters_tokens_paths_and_bodies_are_4xx_never_5xx() {
    // Bodies that happen to be valid waits must not hold the test up.
    let s = TestServer::with(|c| c.wait.default = std::time::Duration::from_millis(1)).await;
    s.submit("p", json!({"type": "T", "operationId": "x"}))
        .await;
    let mut rng = Lcg(42);
    let filter_chars = b"metadata.stae=!<>:()\"'\\*- ANDORNOT0123456789TZdonetrue%";
    let any = b"abcXYZ019%/:?&=#.*-_~ \"{}[],\\";
    for round in 0..400 {
        let filter = rng.text(filter_chars, 40);
        let token = rng.text(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789-_=%", 60);
        let encode = |t: &str| form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>();
        let path = format!(
            "/v1/projects/p/operations?filter={}&pageToken={}",
            encode(&filter),
            encode(&token)
        );
        let (status, body) = s.request("GET", &path, None).await;
        assert!(
            status == 200 || status == 400,
            "round {round} {path}: {status} {body}"
        );
        if status == 400 {
            assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
        }
        let raw_path = format!(
            "/v1/projects/p/operations/{}",
            rng.text(any, 30)
                .replace(['?', '#', ' ', '"', '{', '}', '\\'], "%20")
        );
        for method in ["GET", "POST", "DELETE"] {
            let (status, _) = s.request(method, &raw_path, None).await;
            assert!(status < 500, "round {round} {method} {raw_path}: {status}");
        }
        let body = rng.text(any, 50);
        let (status, _) = s
            .request("POST", "/v1/projects/p/operations:submit", Some(&body))
            .await;
        assert!(status < 500, "round {round} submit {body:?}: {status}");
        let (status, _) = s
            .request("POST", "/v1/projects/p/operations/x:wait", Some(&body))
            .await;
        assert!(status < 500, "round {round} wait {body:?}: {status}");
    }
}
