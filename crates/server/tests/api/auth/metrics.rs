//! `/metrics` with auth on (docs/watch.md#metrics): a token with `longrun.metrics.get` on
//! `*`, else 401/403; public with `[metrics] public = true`. `/readyz` stays public.

use super::*;

async fn server(public: bool, dir: &Path) -> TestServer {
    let idp = dir.join("jwks.json");
    let secret_file = dir.join("secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let iam: longrun_server::auth::iam::Iam = toml::from_str(
        r#"
        [[binding]]
        project = "*"
        role = "roles/longrun.metricsViewer"
        members = ["user:ops@example.com"]
        [[binding]]
        project = "p"
        role = "roles/earthengine.admin"
        members = ["user:admin@example.com"]
        "#,
    )
    .unwrap();
    let data_dir = dir.join(if public { "public" } else { "private" });
    TestServer::with(move |c| {
        c.data_dir = data_dir;
        c.auth.mode = longrun_server::auth::Mode::Oauth;
        c.auth.secret_file = Some(secret_file);
        c.auth.identity_providers = vec![
            toml::from_str(&format!(
                "issuer = \"{IDP}\"\naudience = \"longrun\"\njwks_file = {:?}",
                idp.display().to_string()
            ))
            .unwrap(),
        ];
        c.iam = iam;
        c.metrics.public = public;
    })
    .await
}

async fn get(base: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let client = match token {
        Some(t) => Client::new(base).with_token(t),
        None => Client::new(base),
    };
    let response = client.send(http::Method::GET, path, None).await.unwrap();
    (
        response.status,
        String::from_utf8_lossy(&response.body).into_owned(),
    )
}

#[tokio::test]
async fn metrics_need_their_permission_unless_public() {
    let dir = tempfile::tempdir().unwrap();
    let idp = idp(&dir.path().join("jwks.json"));
    let token = |email: &str| {
        idp.sign(
            &json!({"iss": IDP, "aud": "longrun", "email": email, "scope": EE, "exp": now() + 600}),
        )
    };
    let private = server(false, dir.path()).await;
    let (status, _) = get(&private.base, "/metrics", None).await;
    assert_eq!(status, 401);
    // An admin of project p has no permission on every project.
    let (status, body) = get(&private.base, "/metrics", Some(&token("admin@example.com"))).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("longrun.metrics.get"), "{body}");
    let (status, body) = get(&private.base, "/metrics", Some(&token("ops@example.com"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("# TYPE longrun_http_requests counter"),
        "{body}"
    );
    let (status, _) = get(&private.base, "/readyz", None).await;
    assert_eq!(status, 200);

    let public = server(true, dir.path()).await;
    let (status, body) = get(&public.base, "/metrics", None).await;
    assert_eq!(status, 200, "{body}");
    private.stop().await;
    public.stop().await;
}
