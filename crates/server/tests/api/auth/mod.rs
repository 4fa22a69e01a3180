//! Authentication and access over HTTP: every method against every kind of bad credential,
//! the token endpoint, identity-provider tokens, project IAM, disabled accounts, audit.

mod accounts;
mod assets;
mod grpc;
mod methods;
mod metrics;
mod projects;
mod queues;
mod streams;

use methods::methods;

use crate::common::TestServer;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use longrun_client::Client;
use longrun_server::auth::{KeyFile, create_key};
use longrun_store::Accounts;
use longrun_testkit::auth::{EARTHENGINE_SCOPE as EE, IdpKey, now};
use longrun_types::Timestamp;
use serde_json::{Value, json};
use std::path::Path;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-secret";
const IDP: &str = "https://idp.test";

/// A token shaped like the server's own, signed with `secret`.
fn own_token(secret: &[u8], claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

/// Signs `claims` with the service account's key, as Google's libraries sign assertions.
fn assertion(key: &KeyFile, claims: Value) -> String {
    longrun_testkit::auth::assertion(&key.private_key, &key.private_key_id, &claims)
}

/// The identity provider's key (id `k1`), its JWKS written to `path`.
fn idp(path: &Path) -> IdpKey {
    let key = IdpKey::generate("k1");
    key.write_jwks(path);
    key
}

struct Setup {
    server: TestServer,
    keys: std::collections::HashMap<&'static str, KeyFile>,
    idp: IdpKey,
}

const ACCOUNTS: &[&str] = &[
    "writer-sa",
    "admin-sa",
    "worker-sa",
    "nobody-sa",
    "gone-sa",
    "keys-admin",
];

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, SECRET).unwrap();
    let idp = idp(&dir.path().join("jwks.json"));
    // Accounts go into the store before the server opens it; the token URI is not known
    // yet, so the key files name it later.
    std::fs::create_dir_all(&data_dir).unwrap();
    let store =
        longrun_store_sqlite::SqliteStore::open(&data_dir.join(longrun_server::DATABASE_FILE))
            .unwrap();
    let mut keys = std::collections::HashMap::new();
    for name in ACCOUNTS {
        let (account, key) = create_key(name, "p", "", Timestamp::now()).unwrap();
        assert!(store.create_account(account).await.unwrap());
        keys.insert(*name, key);
    }
    drop(store);
    let iam: longrun_server::auth::iam::Iam = toml::from_str(
        r#"
        [[binding]]
        project = "p"
        role = "roles/earthengine.writer"
        members = ["serviceAccount:writer-sa@p.iam.longrun", "serviceAccount:gone-sa@p.iam.longrun"]
        [[binding]]
        project = "p"
        role = "roles/earthengine.admin"
        members = ["serviceAccount:admin-sa@p.iam.longrun"]
        [[binding]]
        project = "*"
        role = "roles/longrun.worker"
        members = ["serviceAccount:worker-sa@p.iam.longrun"]
        [[binding]]
        project = "p"
        role = "roles/earthengine.viewer"
        members = ["user:viewer@example.com"]
        [[binding]]
        project = "p"
        role = "roles/longrun.serviceAccountAdmin"
        members = ["serviceAccount:keys-admin@p.iam.longrun"]
        "#,
    )
    .unwrap();
    let jwks = dir.path().join("jwks.json");
    let server_data = data_dir;
    let server = TestServer::with(move |c| {
        c.data_dir = server_data;
        c.auth.mode = longrun_server::auth::Mode::Oauth;
        c.auth.secret_file = Some(secret_file);
        c.auth.identity_providers = vec![
            toml::from_str(&format!(
                "issuer = \"{IDP}\"\naudience = \"longrun\"\njwks_file = {:?}",
                jwks.display().to_string()
            ))
            .unwrap(),
        ];
        c.iam = iam;
    })
    .await;
    // The temporary directory must outlive the server: keep it with it.
    std::mem::forget(dir);
    for key in keys.values_mut() {
        key.token_uri = format!("{}/token", server.base);
    }
    Setup { server, keys, idp }
}

impl Setup {
    fn token_uri(&self) -> String {
        format!("{}/token", self.server.base)
    }

    /// Exchanges a fresh assertion of `account` at `/token`.
    async fn grant(&self, account: &str, scope: &str) -> (u16, Value) {
        let key = &self.keys[account];
        let claims = json!({
            "iss": key.client_email, "aud": self.token_uri(), "scope": scope,
            "iat": now(), "exp": now() + 600,
        });
        self.exchange(&assertion(key, claims)).await
    }

    async fn exchange(&self, assertion: &str) -> (u16, Value) {
        longrun_testkit::auth::exchange(&self.server.base, assertion).await
    }

    async fn token(&self, account: &str) -> String {
        let (status, body) = self.grant(account, EE).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    fn client(&self, token: &str) -> Client {
        Client::new(&self.server.base).with_token(token)
    }
}

/// A server in auth mode `oauth`, and clients of project `p`'s writer (who may submit) and
/// of its viewer (who may only read): for the permission tests of other modules.
pub(crate) async fn writer_and_viewer() -> (TestServer, Client, Client) {
    let s = setup().await;
    let writer = s.client(&s.token("writer-sa").await);
    let viewer = s.client(&s.idp.sign(&json!({
        "iss": IDP, "aud": "longrun", "sub": "1234", "email": "viewer@example.com",
        "scope": EE, "exp": now() + 600,
    })));
    (s.server, writer, viewer)
}

async fn status_of(
    client: &Client,
    method: &str,
    path: &str,
    body: &Option<String>,
) -> (u16, Value, bool) {
    let response = client
        .send(
            http::Method::from_bytes(method.as_bytes()).unwrap(),
            path,
            body.as_deref().map(str::as_bytes),
        )
        .await
        .unwrap();
    let challenged = response
        .headers
        .get("www-authenticate")
        .is_some_and(|v| v.to_str().unwrap().starts_with("Bearer"));
    (response.status, response.json(), challenged)
}

#[tokio::test]
async fn every_method_refuses_every_bad_credential() {
    let s = setup().await;
    let writer = s.token("writer-sa").await;
    let gone = s.token("gone-sa").await;
    // An operation to act on, in the project the accounts may use.
    s.client(&writer)
        .submit("p", &json!({"type": "T", "operationId": "x"}))
        .await
        .unwrap();
    let own = |claims: Value| own_token(SECRET, claims);
    let base = |extra: Value| {
        let mut claims = json!({
            "iss": "longrun", "aud": "longrun", "sub": "writer-sa@p.iam.longrun",
            "key": s.keys["writer-sa"].private_key_id, "scope": EE,
            "iat": now(), "exp": now() + 600,
        });
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        claims
    };
    let no_scope = s
        .token_with_scope("writer-sa", "https://www.googleapis.com/auth/drive")
        .await;
    let nobody = s.token("nobody-sa").await;
    let cases: Vec<(&str, Option<String>, &str, u16, &str)> = vec![
        ("no token", None, "p", 401, "CREDENTIALS_MISSING"),
        ("malformed", Some("Bearer not.a.jwt".into()), "p", 401, "ACCESS_TOKEN_INVALID"),
        ("not bearer", Some(format!("Basic {writer}")), "p", 401, "ACCESS_TOKEN_TYPE_UNSUPPORTED"),
        ("wrong signature", Some(format!("Bearer {}", own_token(b"another secret of at least thirty-two bytes", base(json!({}))))), "p", 401, "ACCESS_TOKEN_INVALID"),
        ("expired", Some(format!("Bearer {}", own(base(json!({"iat": now() - 7200, "exp": now() - 3600}))))), "p", 401, "ACCESS_TOKEN_EXPIRED"),
        ("wrong audience", Some(format!("Bearer {}", own(base(json!({"aud": "someone-else"}))))), "p", 401, "ACCESS_TOKEN_INVALID"),
        ("wrong issuer", Some(format!("Bearer {}", own(base(json!({"iss": "someone-else"}))))), "p", 401, "ACCESS_TOKEN_INVALID"),
        ("untrusted provider", Some(format!("Bearer {}", s.idp.sign(&json!({"iss": "https://evil.test", "aud": "longrun", "email": "viewer@example.com", "scope": EE, "exp": now() + 600})))), "p", 401, "ACCESS_TOKEN_INVALID"),
        ("missing scope", Some(format!("Bearer {no_scope}")), "p", 403, "ACCESS_TOKEN_SCOPE_INSUFFICIENT"),
        ("no permission", Some(format!("Bearer {nobody}")), "p", 403, "IAM_PERMISSION_DENIED"),
        ("another project", Some(format!("Bearer {writer}")), "q", 403, "IAM_PERMISSION_DENIED"),
        ("disabled account", Some(format!("Bearer {gone}")), "p", 401, "ACCOUNT_STATE_INVALID"),
    ];
    // Disabled after its token was issued: the token stops working.
    s.disable("gone-sa@p.iam.longrun").await;
    for (case, authorization, project, want, reason) in &cases {
        let client = match authorization {
            Some(value) => Client::new(&s.server.base).with_authorization(value),
            None => Client::new(&s.server.base),
        };
        for (method_name, method, path, body) in methods(project) {
            // The writer holds no worker role anywhere: a lease is refused for that, not
            // for the project.
            let (status, answer, challenged) = status_of(&client, method, &path, &body).await;
            assert_eq!(status, *want, "{case} / {method_name}: {answer}");
            assert_eq!(
                answer["error"]["details"][0]["reason"], *reason,
                "{case} / {method_name}: {answer}"
            );
            assert_eq!(
                challenged,
                *want == 401,
                "{case} / {method_name}: WWW-Authenticate"
            );
        }
    }
    // The same over gRPC: every method, the Work stream included.
    let channel = tonic::transport::Channel::from_shared(s.server.base.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    for (case, authorization, project, want, reason) in &cases {
        let code = if *want == 401 {
            tonic::Code::Unauthenticated
        } else {
            tonic::Code::PermissionDenied
        };
        for method in grpc::METHODS {
            let (got, got_reason) =
                grpc::status_of(&channel, authorization.as_deref(), method, project).await;
            assert_eq!(
                (got, got_reason.as_str()),
                (code, *reason),
                "gRPC {case} / {method}"
            );
        }
    }
    // Not one operation changed: x is still PENDING, nothing was submitted elsewhere.
    let op = s
        .client(&writer)
        .call(http::Method::GET, "/v1/projects/p/operations/x", None)
        .await
        .unwrap();
    assert_eq!(op["metadata"]["state"], "PENDING");
    let listed = s.client(&writer).list("p", "", 100, "").await.unwrap();
    assert_eq!(listed["operations"].as_array().unwrap().len(), 1);
}

impl Setup {
    async fn token_with_scope(&self, account: &str, scope: &str) -> String {
        let (status, body) = self.grant(account, scope).await;
        assert_eq!(status, 200, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// Disables an account through the server (the store is the server's while it runs),
    /// as the account admin.
    async fn disable(&self, email: &str) {
        let admin = self.client(&self.token("keys-admin").await);
        admin
            .call(
                http::Method::POST,
                &format!("/v1/projects/p/serviceAccounts/{email}:disable"),
                Some(&json!({})),
            )
            .await
            .unwrap();
        // The server reads accounts again after at most a second.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    }
}

/// The server's own tokens end exactly at `exp` (its own clock signed them); an identity
/// provider's keep the provider's `leeway` (default 10 s) for clock skew.
#[tokio::test]
async fn tokens_end_at_exp_and_providers_keep_a_small_leeway() {
    let s = setup().await;
    let own = |exp: u64| {
        own_token(
            SECRET,
            json!({
                "iss": "longrun", "aud": "longrun", "sub": "writer-sa@p.iam.longrun",
                "key": s.keys["writer-sa"].private_key_id, "scope": EE,
                "iat": now() - 600, "exp": exp,
            }),
        )
    };
    let provider = |exp: u64| {
        s.idp.sign(&json!({
            "iss": IDP, "aud": "longrun", "email": "viewer@example.com", "scope": EE, "exp": exp,
        }))
    };
    let cases = [
        ("own token, a minute left", own(now() + 60), 200),
        ("own token at its exp", own(now()), 401),
        ("own token a second past exp", own(now() - 1), 401),
        ("provider token 3 s past exp", provider(now() - 3), 200),
        ("provider token 30 s past exp", provider(now() - 30), 401),
    ];
    for (case, token, want) in cases {
        let got = list_status(&s.client(&token), "ACCESS_TOKEN_EXPIRED", case).await;
        assert_eq!(got, want, "{case}");
    }
}

/// A token that is not valid yet is refused: an identity provider's whose `nbf` or `iat` is
/// ahead by more than the provider's leeway (10 s), and the server's own whose `nbf` is ahead.
#[tokio::test]
async fn tokens_not_valid_yet_are_refused_with_the_same_leeway() {
    let s = setup().await;
    let provider = |extra: Value| {
        let mut claims = json!({
            "iss": IDP, "aud": "longrun", "email": "viewer@example.com", "scope": EE,
            "exp": now() + 7200,
        });
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        s.idp.sign(&claims)
    };
    let own = |nbf: u64| {
        own_token(
            SECRET,
            json!({
                "iss": "longrun", "aud": "longrun", "sub": "writer-sa@p.iam.longrun",
                "key": s.keys["writer-sa"].private_key_id, "scope": EE,
                "iat": now(), "nbf": nbf, "exp": now() + 7200,
            }),
        )
    };
    let cases = [
        (
            "provider nbf an hour ahead",
            provider(json!({"nbf": now() + 3600})),
            401,
        ),
        (
            "provider nbf 3 s ahead",
            provider(json!({"nbf": now() + 3})),
            200,
        ),
        (
            "provider nbf passed",
            provider(json!({"nbf": now() - 60})),
            200,
        ),
        (
            "provider iat an hour ahead",
            provider(json!({"iat": now() + 3600})),
            401,
        ),
        (
            "provider iat 3 s ahead",
            provider(json!({"iat": now() + 3})),
            200,
        ),
        (
            "provider iat not a time",
            provider(json!({"iat": "soon"})),
            401,
        ),
        ("own token nbf an hour ahead", own(now() + 3600), 401),
        ("own token nbf passed", own(now() - 1), 200),
    ];
    for (case, token, want) in cases {
        let got = list_status(&s.client(&token), "ACCESS_TOKEN_INVALID", case).await;
        assert_eq!(got, want, "{case}");
    }
}

#[tokio::test]
async fn roles_grant_what_they_name_and_cancels_are_audited() {
    let s = setup().await;
    let writer = s.client(&s.token("writer-sa").await);
    let admin = s.client(&s.token("admin-sa").await);
    let worker = s.client(&s.token("worker-sa").await);
    let viewer = s.client(&s.idp.sign(&json!({
        "iss": IDP, "aud": "longrun", "sub": "1234", "email": "viewer@example.com",
        "scope": EE, "exp": now() + 600,
    })));
    let status = |r: Result<Value, longrun_client::Error>| match r {
        Ok(_) => 200,
        Err(longrun_client::Error::Api { http_status, .. }) => http_status,
        Err(e) => panic!("{e}"),
    };
    writer
        .submit("p", &json!({"type": "T", "operationId": "a"}))
        .await
        .unwrap();
    writer
        .submit("p", &json!({"type": "T", "operationId": "b"}))
        .await
        .unwrap();
    // The viewer (an identity provider's user) reads, and nothing more.
    assert_eq!(status(viewer.list("p", "", 10, "").await), 200);
    assert_eq!(
        status(
            viewer
                .call(
                    http::Method::POST,
                    "/v1/projects/p/operations/a:cancel",
                    Some(&json!({}))
                )
                .await
        ),
        403
    );
    // The writer cancels but cannot delete; the admin deletes.
    assert_eq!(
        status(
            writer
                .call(
                    http::Method::POST,
                    "/v1/projects/p/operations/a:cancel",
                    Some(&json!({}))
                )
                .await
        ),
        200
    );
    assert_eq!(
        status(
            writer
                .call(http::Method::DELETE, "/v1/projects/p/operations/b", None)
                .await
        ),
        403
    );
    assert_eq!(
        status(
            admin
                .call(
                    http::Method::POST,
                    "/v1/projects/p/operations/b:cancel",
                    Some(&json!({}))
                )
                .await
        ),
        200
    );
    assert_eq!(
        status(
            admin
                .call(http::Method::DELETE, "/v1/projects/p/operations/b", None)
                .await
        ),
        200
    );
    // The cancelled operation names who cancelled it.
    let a = viewer
        .call(http::Method::GET, "/v1/projects/p/operations/a", None)
        .await
        .unwrap();
    assert_eq!(a["error"]["code"], 1);
    let info = &a["error"]["details"][0];
    assert_eq!(info["reason"], "CANCELLED_BY_PRINCIPAL");
    assert_eq!(
        info["metadata"]["principal"],
        "serviceAccount:writer-sa@p.iam.longrun"
    );
    // The worker leases and completes; the writer may not lease.
    writer
        .submit("p", &json!({"type": "W", "operationId": "w"}))
        .await
        .unwrap();
    let lease = json!({"types": ["W"], "waitTimeout": "0s"});
    assert_eq!(
        status(
            writer
                .call(http::Method::POST, "/v1/workers/w1:lease", Some(&lease))
                .await
        ),
        403
    );
    let leased = worker
        .call(http::Method::POST, "/v1/workers/w1:lease", Some(&lease))
        .await
        .unwrap();
    let lease_id = leased["leases"][0]["leaseId"].as_str().unwrap();
    let done = worker
        .call(
            http::Method::POST,
            "/v1/projects/p/operations/w:complete",
            Some(&json!({"leaseId": lease_id, "response": {}})),
        )
        .await
        .unwrap();
    assert_eq!(done["done"], true);
    // The access_token query parameter works as the header does.
    let token = s.token("writer-sa").await;
    let response = Client::new(&s.server.base)
        .send(
            http::Method::GET,
            &format!("/v1/projects/p/operations?access_token={token}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn the_token_endpoint_checks_every_part_of_the_assertion() {
    let s = setup().await;
    let key = &s.keys["writer-sa"];
    let good = || {
        json!({
            "iss": key.client_email, "aud": s.token_uri(), "scope": EE,
            "iat": now(), "exp": now() + 600,
        })
    };
    let with = |extra: Value| {
        let mut claims = good();
        claims
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        claims
    };
    let (status, body) = s.exchange(&assertion(key, good())).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], EE);
    // Signed by another account's key, for the wrong audience, expired, too long, unknown.
    let cases = [
        ("another key", assertion(&s.keys["admin-sa"], good())),
        (
            "wrong audience",
            assertion(key, with(json!({"aud": "https://login.example.com/token"}))),
        ),
        (
            "expired",
            assertion(key, with(json!({"iat": now() - 7200, "exp": now() - 3600}))),
        ),
        (
            "longer than an hour",
            assertion(key, with(json!({"exp": now() + 7200}))),
        ),
        (
            "unknown account",
            assertion(key, with(json!({"iss": "who@p.iam.longrun"}))),
        ),
        (
            "no iat",
            assertion(
                key,
                json!({"iss": key.client_email, "aud": s.token_uri(), "exp": now() + 600}),
            ),
        ),
        ("not a jwt", "garbage".to_string()),
    ];
    for (case, assertion) in cases {
        let (status, body) = s.exchange(&assertion).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{case}: {body}"
        );
    }
    let response = s
        .server
        .client
        .send(
            http::Method::POST,
            "/token",
            Some(b"grant_type=password&username=x"),
        )
        .await
        .unwrap();
    assert_eq!(
        (response.status, response.json()["error"].clone()),
        (400, json!("unsupported_grant_type"))
    );
    // A disabled account gets no token.
    s.disable("writer-sa@p.iam.longrun").await;
    let (status, body) = s.exchange(&assertion(key, good())).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_sdk_sends_its_token() {
    use longrun_worker::{HttpBackend, Worker};
    let s = setup().await;
    let writer = s.client(&s.token("writer-sa").await);
    writer
        .submit("p", &json!({"type": "ECHO", "operationId": "e"}))
        .await
        .unwrap();
    let worker = Worker::new("authed").handle("ECHO", |_| async { Ok(json!({"ok": true})) });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // The SDK leases and completes with the worker account's token.
    let backend = HttpBackend::new(&s.server.base).with_token(&s.token("worker-sa").await);
    let running = tokio::spawn(worker.run(std::sync::Arc::new(backend), async {
        let _ = stopped.await;
    }));
    let done = writer
        .call(
            http::Method::POST,
            "/v1/projects/p/operations/e:wait",
            Some(&json!({"timeout": "10s"})),
        )
        .await
        .unwrap();
    assert_eq!(done["metadata"]["state"], "SUCCEEDED", "{done}");
    let _ = stop.send(());
    running.await.unwrap();
}

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config { cases: 200, ..Default::default() })]
    #[test]
    fn garbage_credentials_get_a_401_never_a_panic(value in "\\PC{0,200}", token in "[A-Za-z0-9._~+/=-]{0,300}") {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let s = fuzz_server();
            for authorization in [value.clone(), format!("Bearer {token}"), format!("bearer {value}")] {
                let client = Client::new(&s).with_authorization(&authorization);
                let response = client.send(http::Method::GET, "/v1/projects/p/operations", None).await.unwrap();
                assert_eq!(response.status, 401, "{authorization:?}");
            }
            let response = Client::new(&s).send(http::Method::POST, "/token", Some(token.as_bytes())).await.unwrap();
            assert!(response.status == 400, "{token:?}: {}", response.status);
        });
    }
}

/// One oauth server for the fuzz cases.
fn fuzz_server() -> String {
    static BASE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    crate::common::shared(&BASE, |c| c.auth.mode = longrun_server::auth::Mode::Oauth)
}

/// The HTTP status of a list of project `p` by `client`: 200, or a refusal whose reason
/// must be `reason` (`case` names the call in a failure).
async fn list_status(client: &Client, reason: &str, case: &str) -> u16 {
    match client.list("p", "", 1, "").await {
        Ok(_) => 200,
        Err(longrun_client::Error::Api {
            http_status, body, ..
        }) => {
            assert_eq!(body["error"]["details"][0]["reason"], reason, "{case}");
            http_status
        }
        Err(e) => panic!("{case}: {e}"),
    }
}
