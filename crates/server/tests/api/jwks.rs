//! Identity-provider keys fetched from an https URL: checked against the public roots and
//! a configured CA, cached, and read again when a token names a key id not held (at most
//! every 10 s).

use crate::common::TestServer;
use longrun_client::Client;
use longrun_testkit::auth::{EARTHENGINE_SCOPE, IdpKey, now};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A token of `issuer` for alice, signed with `key`.
fn token(key: &IdpKey, issuer: &str) -> String {
    let exp = now() + 600;
    let claims = json!({"iss": issuer, "aud": "longrun", "email": "alice@example.com",
                        "scope": EARTHENGINE_SCOPE, "exp": exp});
    key.sign(&claims)
}

/// An https server for `localhost` with a self-signed certificate (written to `ca_file`),
/// answering every request with the key set in `keys`; counts the requests.
async fn jwks_server(
    keys: Arc<Mutex<Value>>,
    ca_file: &std::path::Path,
) -> (u16, Arc<AtomicUsize>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(ca_file, certified.cert.pem()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![certified.cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, keys, count) = (acceptor.clone(), keys.clone(), count.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return; // a client that does not trust the certificate
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                count.fetch_add(1, Ordering::SeqCst);
                let body = keys.lock().unwrap().to_string();
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, served)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_an_https_url_are_verified_cached_and_refreshed() {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    let key1 = IdpKey::generate("k1");
    let keys = Arc::new(Mutex::new(json!({"keys": [key1.jwk()]})));
    let (port, fetched) = jwks_server(keys.clone(), &ca_file).await;
    let url = format!("https://localhost:{port}/jwks.json");
    let config = format!(
        "[[identity_provider]]\nissuer = \"https://trusted.test\"\naudience = \"longrun\"\n\
         jwks_url = \"{url}\"\nca_file = {ca:?}\n\
         [[identity_provider]]\nissuer = \"https://no-ca.test\"\naudience = \"longrun\"\n\
         jwks_url = \"{url}\"\n",
        ca = ca_file.display().to_string()
    );
    let auth: longrun_server::auth::AuthConfig =
        toml::from_str(&format!("mode = \"oauth\"\n{config}")).unwrap();
    let iam: longrun_server::auth::iam::Iam = toml::from_str(
        "[[binding]]\nproject = \"p\"\nrole = \"roles/earthengine.viewer\"\nmembers = [\"user:alice@example.com\"]\n",
    )
    .unwrap();
    let server = TestServer::with(move |c| {
        c.auth = auth;
        c.iam = iam;
    })
    .await;
    let list = |token: String| {
        let client = Client::new(&server.base).with_token(&token);
        async move {
            client
                .send(http::Method::GET, "/v1/projects/p/operations", None)
                .await
                .unwrap()
                .status
        }
    };
    // Fetched once, then kept.
    assert_eq!(list(token(&key1, "https://trusted.test")).await, 200);
    assert_eq!(list(token(&key1, "https://trusted.test")).await, 200);
    assert_eq!(fetched.load(Ordering::SeqCst), 1);
    // The same URL without the CA: the certificate is not trusted, nothing is fetched.
    assert_eq!(list(token(&key1, "https://no-ca.test")).await, 401);
    assert_eq!(fetched.load(Ordering::SeqCst), 1);
    // The provider rotates its key: a token with the new key id makes the server read the
    // keys again, but not more often than every 10 s.
    let key2 = IdpKey::generate("k2");
    *keys.lock().unwrap() = json!({"keys": [key2.jwk()]});
    assert_eq!(list(token(&key2, "https://trusted.test")).await, 401);
    assert_eq!(fetched.load(Ordering::SeqCst), 1);
    tokio::time::sleep(std::time::Duration::from_millis(10_100)).await;
    assert_eq!(list(token(&key2, "https://trusted.test")).await, 200);
    assert_eq!(fetched.load(Ordering::SeqCst), 2);
    // The old key is gone from the set: its tokens no longer hold.
    assert_eq!(list(token(&key1, "https://trusted.test")).await, 401);
}
