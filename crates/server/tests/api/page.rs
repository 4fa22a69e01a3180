//! The task manager page (docs/watch.md#the-task-manager-page): `/` and its assets come from the
//! binary, with `Cache-Control` and an ETag that answers 304; unknown assets are 404.

use crate::common::TestServer;

#[tokio::test]
async fn page_and_assets_are_served_with_etags() {
    let s = TestServer::start().await;
    for (path, content_type, marker) in [
        ("/", "text/html", "<title>longrun"),
        ("/?project=p", "text/html", "/assets/app.js"),
        ("/assets/app.js", "text/javascript", "operations:watch"),
        ("/assets/app.css", "text/css", ".badge"),
    ] {
        let r = s.client.send(http::Method::GET, path, None).await.unwrap();
        assert_eq!(r.status, 200, "{path}");
        let h = |k: &str| r.headers[k].to_str().unwrap().to_string();
        assert!(h("content-type").starts_with(content_type), "{path}");
        assert_eq!(h("cache-control"), "no-cache");
        assert!(String::from_utf8_lossy(&r.body).contains(marker), "{path}");
        let etag = h("etag");
        let request = http::Request::builder()
            .uri(format!("{}{path}", s.base))
            .header("if-none-match", &etag)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        let again = client.request(request).await.unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
    let (status, body) = s.request("GET", "/assets/nope.js", None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    let (status, _) = s.request("POST", "/", Some("{}")).await;
    assert_eq!(status, 405);
    s.stop().await;
}

/// A PENDING operation of a type no worker or executor has asked for says so in the
/// `x-longrun-waiting` header of a get; once a worker asks for the type, it no longer does.
#[tokio::test]
async fn why_work_waits() {
    let s = TestServer::start().await;
    s.submit(
        "p",
        serde_json::json!({"type": "NOBODY", "operationId": "a"}),
    )
    .await;
    let get = || {
        s.client
            .send(http::Method::GET, "/v1/projects/p/operations/a", None)
    };
    let r = get().await.unwrap();
    let why = r.headers["x-longrun-waiting"].to_str().unwrap().to_string();
    assert!(
        why.contains("no executor or worker has asked for operations of type NOBODY since"),
        "{why}"
    );
    // A worker asks for another type: still waiting; for this type: no longer.
    for (types, waiting) in [(r#"["OTHER"]"#, true), (r#"["NOBODY"]"#, false)] {
        let body = format!(r#"{{"types": {types}, "waitTimeout": "0s", "leaseDuration": "60s"}}"#);
        let (status, _) = s.request("POST", "/v1/workers/w:lease", Some(&body)).await;
        assert_eq!(status, 200);
        if waiting {
            let r = get().await.unwrap();
            assert!(r.headers.contains_key("x-longrun-waiting"));
        }
    }
    let r = get().await.unwrap();
    assert!(
        !r.headers.contains_key("x-longrun-waiting"),
        "{:?}",
        r.headers
    );
    s.stop().await;
}

/// Asks for two operations of `op_type` when a limit lets one go (operations `a` and `b`
/// of project `p`), and answers why the other waits, as a get of it says.
async fn lease_one_of_two(s: &TestServer, op_type: &str) -> String {
    let body = serde_json::json!({
        "types": [op_type], "waitTimeout": "0s", "leaseDuration": "60s", "maxOperations": 2,
    })
    .to_string();
    let (_, leased) = s.request("POST", "/v1/workers/w:lease", Some(&body)).await;
    assert_eq!(leased["leases"].as_array().unwrap().len(), 1, "{leased}");
    let waiting = if leased["leases"][0]["operation"]["name"] == "projects/p/operations/a" {
        "b"
    } else {
        "a"
    };
    let path = format!("/v1/projects/p/operations/{waiting}");
    let r = s.client.send(http::Method::GET, &path, None).await.unwrap();
    r.headers["x-longrun-waiting"].to_str().unwrap().to_string()
}

/// A PENDING operation of a project at its running limit says the limit holds it back.
#[tokio::test]
async fn the_running_limit_holds_work_back() {
    let s = TestServer::with(|c| c.project_defaults.max_running = 1).await;
    for id in ["a", "b"] {
        s.submit("p", serde_json::json!({"type": "T", "operationId": id}))
            .await;
    }
    let why = lease_one_of_two(&s, "T").await;
    assert_eq!(why, "project p is at its limit of 1 running operations");
    s.stop().await;
}

/// A PENDING export of a project at its export cap (docs/projects.md) says the cap
/// holds it back; an operation that is not an export does not wait for it.
#[tokio::test]
async fn the_export_cap_holds_exports_back() {
    let s = TestServer::with(|c| c.projects.plan_max_concurrent_exports = 1).await;
    for id in ["a", "b"] {
        s.submit(
            "p",
            serde_json::json!({"type": "EXPORT_IMAGE", "operationId": id}),
        )
        .await;
    }
    s.submit(
        "p",
        serde_json::json!({"type": "INGEST_IMAGE", "operationId": "in"}),
    )
    .await;
    let why = lease_one_of_two(&s, "EXPORT_IMAGE").await;
    assert_eq!(
        why,
        "project p is at its limit of 1 running exports (maxConcurrentExports)"
    );
    let body = r#"{"types": ["INGEST_IMAGE"], "waitTimeout": "0s", "leaseDuration": "1s", "maxOperations": 1}"#;
    let (status, _) = s.request("POST", "/v1/workers/v:lease", Some(body)).await;
    assert_eq!(status, 200);
    s.submit(
        "p",
        serde_json::json!({"type": "INGEST_IMAGE", "operationId": "in2"}),
    )
    .await;
    let path = "/v1/projects/p/operations/in2";
    let r = s.client.send(http::Method::GET, path, None).await.unwrap();
    assert!(
        !r.headers.contains_key("x-longrun-waiting"),
        "{:?}",
        r.headers
    );
    s.stop().await;
}
