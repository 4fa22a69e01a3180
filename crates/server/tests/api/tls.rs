//! `[tls]`: HTTPS and HTTP/2 on the one port, certificates read again when their files
//! change (no request fails meanwhile), and client certificates: required with
//! `client_ca_file`, and bound as `cert:` members with auth on.

use crate::common::TestServer;
use longrun_testkit::tls::{Ca, Issued, request};
use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn port(server: &TestServer) -> u16 {
    server.base.rsplit(':').next().unwrap().parse().unwrap()
}

async fn tls_server(
    dir: &Path,
    ca: &Ca,
    extra: impl FnOnce(&mut longrun_server::Config),
) -> TestServer {
    let issued = ca.server(dir, "server");
    TestServer::with(|config| {
        config.tls.cert_file = Some(issued.cert_file);
        config.tls.key_file = Some(issued.key_file);
        extra(config);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_h2_on_one_port_and_plain_http_gets_no_answer() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test ca");
    let ca_file = ca.write(&dir.path().join("ca.crt"));
    let server = tls_server(dir.path(), &ca, |_| {}).await;
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let port = port(&server);
    let body = r#"{"type": "T", "operationId": "over-tls"}"#;
    let made = request(
        port,
        "POST",
        "/v1/projects/p/operations:submit",
        Some(body),
        &ca_file,
        None,
    )
    .await
    .unwrap();
    assert_eq!(made.status, 200, "{}", made.body);
    let got = request(
        port,
        "GET",
        "/v1/projects/p/operations/over-tls",
        None,
        &ca_file,
        None,
    )
    .await
    .unwrap();
    let got: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(got["metadata"]["state"], "PENDING");

    // ALPN offers HTTP/2 (what gRPC clients ask for) beside HTTP/1.1.
    let alpn = negotiated(port, &ca_file, &[b"h2", b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    let alpn = negotiated(port, &ca_file, &[b"http/1.1"]).await;
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));

    // A client speaking plain HTTP to the TLS port gets no HTTP answer.
    let plain = longrun_client::Client::new(&format!("http://127.0.0.1:{port}"));
    assert!(
        plain
            .get(&longrun_types::Name::parse("projects/p/operations/over-tls").unwrap())
            .await
            .is_err()
    );
    // And a client that does not trust the certificate cannot connect.
    let other = Ca::new("other ca").write(&dir.path().join("other.crt"));
    assert!(
        request(port, "GET", "/readyz", None, &other, None)
            .await
            .is_err()
    );
    server.stop().await;
}

/// The protocol ALPN settled on for a client offering `protocols`.
async fn negotiated(port: u16, ca_file: &Path, protocols: &[&[u8]]) -> Option<Vec<u8>> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca_file).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_certificate_is_used_by_new_connections_and_no_request_fails() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test ca");
    let ca_file = ca.write(&dir.path().join("ca.crt"));
    let server = tls_server(dir.path(), &ca, |_| {}).await;
    let port = port(&server);
    let first = request(port, "GET", "/readyz", None, &ca_file, None)
        .await
        .unwrap();
    assert_eq!(first.status, 200);

    // Requests on new connections, back to back, for the whole rotation.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, served, failed, ca_file) = (
            stop.clone(),
            served.clone(),
            failed.clone(),
            ca_file.clone(),
        );
        tokio::spawn(async move {
            let mut errors = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                match request(port, "GET", "/readyz", None, &ca_file, None).await {
                    Ok(answer) if answer.status == 200 => served.fetch_add(1, Ordering::SeqCst),
                    other => {
                        errors.push(format!("{other:?}"));
                        failed.fetch_add(1, Ordering::SeqCst)
                    }
                };
            }
            errors
        })
    };
    // A key that is not the certificate's is not taken: the server keeps the old pair.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stray = ca.server(&dir.path().join(".."), "stray");
    std::fs::copy(&stray.key_file, dir.path().join("server.key.new")).unwrap();
    std::fs::rename(
        dir.path().join("server.key.new"),
        dir.path().join("server.key"),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let now = request(port, "GET", "/readyz", None, &ca_file, None)
        .await
        .unwrap();
    assert_eq!(
        now.server_cert, first.server_cert,
        "a mismatched pair was taken"
    );

    // The new pair, written whole: new connections show it within a couple of seconds.
    let rotated = ca.server(dir.path(), "server");
    let began = Instant::now();
    loop {
        let now = request(port, "GET", "/readyz", None, &ca_file, None)
            .await
            .unwrap();
        if now.server_cert == rotated.der {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "the new certificate was not taken"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let errors = load.await.unwrap();
    assert!(
        served.load(Ordering::SeqCst) > 20,
        "too few requests to tell"
    );
    assert_eq!(failed.load(Ordering::SeqCst), 0, "{errors:?}");
    let _ = std::fs::remove_file(&stray.cert_file);
    let _ = std::fs::remove_file(&stray.key_file);
    server.stop().await;
}

/// A server with auth on that requires client certificates `clients` signed, with `iam`'s
/// bindings; the CA of its own certificate in `ca_file`.
struct Mtls {
    server: TestServer,
    ca: Ca,
    ca_file: std::path::PathBuf,
    clients: Ca,
    dir: tempfile::TempDir,
}

async fn mtls_server(iam: &str) -> Mtls {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("test ca");
    let ca_file = ca.write(&dir.path().join("ca.crt"));
    let clients = Ca::new("client ca");
    let clients_file = clients.write(&dir.path().join("clients.crt"));
    let server = tls_server(dir.path(), &ca, |config| {
        config.tls.client_ca_file = Some(clients_file);
        config.auth.mode = longrun_server::auth::Mode::Oauth;
        config.iam = toml::from_str(iam).unwrap();
    })
    .await;
    Mtls {
        server,
        ca,
        ca_file,
        clients,
        dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_and_name_members() {
    let Mtls {
        server,
        ca,
        ca_file,
        clients: client_ca,
        dir,
    } = mtls_server(
        r#"
        [[binding]]
        project = "p"
        role = "roles/earthengine.writer"
        members = ["cert:spiffe://example.org/ci"]
        "#,
    )
    .await;
    let port = port(&server);
    let ci = client_ca.client(dir.path(), "ci", "spiffe://example.org/ci");
    let stranger = client_ca.client(dir.path(), "stranger", "stranger@example.org");
    let forged = ca.client(dir.path(), "forged", "spiffe://example.org/ci");
    let call = |method: &'static str,
                path: String,
                body: Option<&'static str>,
                client: Option<&Issued>| {
        let (ca_file, client) = (
            ca_file.clone(),
            client.map(|c| Issued {
                cert_file: c.cert_file.clone(),
                key_file: c.key_file.clone(),
                der: c.der.clone(),
            }),
        );
        async move { request(port, method, &path, body, &ca_file, client.as_ref()).await }
    };

    // No certificate, or one another CA signed: no connection.
    let list = "/v1/projects/p/operations".to_string();
    assert!(call("GET", list.clone(), None, None).await.is_err());
    assert!(
        call("GET", list.clone(), None, Some(&forged))
            .await
            .is_err()
    );

    // The bound identity may submit and cancel; its cancels are recorded as it.
    let body = r#"{"type": "T", "operationId": "by-cert"}"#;
    let made = call(
        "POST",
        "/v1/projects/p/operations:submit".into(),
        Some(body),
        Some(&ci),
    )
    .await
    .unwrap();
    assert_eq!(made.status, 200, "{}", made.body);
    let cancelled = call(
        "POST",
        "/v1/projects/p/operations/by-cert:cancel".into(),
        Some("{}"),
        Some(&ci),
    )
    .await
    .unwrap();
    assert_eq!(cancelled.status, 200, "{}", cancelled.body);
    let got = call(
        "GET",
        "/v1/projects/p/operations/by-cert".into(),
        None,
        Some(&ci),
    )
    .await
    .unwrap();
    let got: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(got["error"]["code"], 1);
    assert!(
        got["error"]["details"]
            .to_string()
            .contains("cert:spiffe://example.org/ci"),
        "{got}"
    );

    // A verified certificate that no binding names: authenticated, not allowed.
    let refused = call("GET", list.clone(), None, Some(&stranger))
        .await
        .unwrap();
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("PERMISSION_DENIED"),
        "{}",
        refused.body
    );
    // A bearer token, when one is sent, is what counts.
    let bad_token = call(
        "GET",
        format!("{list}?access_token=not-a-token"),
        None,
        Some(&ci),
    )
    .await
    .unwrap();
    assert_eq!(bad_token.status, 401, "{}", bad_token.body);
    server.stop().await;
}

/// The Rust worker SDK over TLS with a client certificate, on both of its backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_workers_show_their_certificate() {
    use longrun_worker::{Backend, GrpcBackend, HttpBackend, Worker};
    let Mtls {
        server,
        ca_file,
        clients,
        dir,
        ..
    } = mtls_server(
        r#"
        [[binding]]
        project = "p"
        role = "roles/earthengine.admin"
        members = ["cert:spiffe://example.org/ci"]
        [[binding]]
        project = "p"
        role = "roles/longrun.worker"
        members = ["cert:spiffe://example.org/ci"]
        "#,
    )
    .await;
    let port = port(&server);
    let ci = clients.client(dir.path(), "ci", "spiffe://example.org/ci");
    let tls = longrun_client::Tls {
        ca_file: Some(ca_file.clone()),
        client_cert: Some((ci.cert_file.clone(), ci.key_file.clone())),
    };

    async fn drain<B: Backend>(backend: Arc<B>, port: u16, ca_file: &Path, ci: &Issued, id: &str) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let worker = Worker::new("tls-worker")
            .handle("ECHO", |ctx| async move { Ok(ctx.payload().clone()) });
        let running = tokio::spawn(worker.run(backend, async {
            let _ = stopped.await;
        }));
        let body =
            format!(r#"{{"type": "ECHO", "operationId": "{id}", "payload": {{"id": "{id}"}}}}"#);
        let made = request(
            port,
            "POST",
            "/v1/projects/p/operations:submit",
            Some(&body),
            ca_file,
            Some(ci),
        )
        .await
        .unwrap();
        assert_eq!(made.status, 200, "{}", made.body);
        let wait = format!("/v1/projects/p/operations/{id}:wait");
        let done = request(
            port,
            "POST",
            &wait,
            Some(r#"{"timeout": "20s"}"#),
            ca_file,
            Some(ci),
        )
        .await
        .unwrap();
        let done: Value = serde_json::from_str(&done.body).unwrap();
        assert_eq!(done["metadata"]["state"], "SUCCEEDED", "{done}");
        let _ = stop.send(());
        running.await.unwrap();
    }
    let grpc = Arc::new(GrpcBackend::with_tls(&server.base, &tls).unwrap());
    drain(grpc, port, &ca_file, &ci, "over-grpc").await;
    let rest = Arc::new(HttpBackend::with_tls(&server.base, &tls).unwrap());
    drain(rest, port, &ca_file, &ci, "over-rest").await;
    server.stop().await;
}
