//! The task manager page (contract section 13): `/` and its assets come from the binary,
//! with `Cache-Control` and an ETag that answers 304; unknown assets are 404.

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
