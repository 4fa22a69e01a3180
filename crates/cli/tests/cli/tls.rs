//! A server with TLS and required client certificates (mTLS) met by real clients: the CLI
//! (`--ca-file`, `--client-cert-file`, `--client-key-file`, a key file whose token endpoint
//! is https), curl over HTTP/1.1 and HTTP/2, and Python's grpcio and requests
//! (tests/python/tls_clients.py, when `LONGRUN_TEST_PYTHON` is set).

use longrun_testkit::auth::{create_account, point_at};
use longrun_testkit::process::{Server, longrun_exit, operations};
use longrun_testkit::python::Python;
use longrun_testkit::tls::Ca;
use std::process::Command;

const CONFIG: &str = r#"
[auth]
mode = "oauth"

[[iam.binding]]
project = "p"
role = "roles/earthengine.admin"
members = ["cert:spiffe://example.org/ci", "serviceAccount:tls-admin@p.iam.longrun"]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_over_tls_with_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dir.path();
    let data = pki.join("data");
    let key = create_account(&data, "tls-admin", "p", pki);
    let ca = Ca::new("server ca");
    let ca_file = ca.write(&pki.join("ca.crt"));
    let clients = Ca::new("client ca");
    let clients_file = clients.write(&pki.join("clients.crt"));
    let served = ca.server(pki, "server");
    let ci = clients.client(pki, "ci", "spiffe://example.org/ci");
    let config = format!(
        "[tls]\ncert_file = {:?}\nkey_file = {:?}\nclient_ca_file = {:?}\n{CONFIG}",
        served.cert_file, served.key_file, clients_file
    );
    let server = Server::start_with_config(&data, &config);
    let base = server.base.as_str();
    assert!(base.starts_with("https://"), "{base}");
    let (ca_file, cert, client_key) = (
        ca_file.to_str().unwrap(),
        ci.cert_file.to_str().unwrap(),
        ci.key_file.to_str().unwrap(),
    );
    let tls = [
        "--ca-file",
        ca_file,
        "--client-cert-file",
        cert,
        "--client-key-file",
        client_key,
    ];

    // The CLI, authenticated by its certificate alone.
    let submit = |extra: &[&str]| operations(base, &[&["submit", "--type", "T"], extra].concat());
    let (code, out, err) = submit(&tls);
    assert_eq!(code, 0, "{err}");
    let name = out.trim().to_string();
    assert!(name.starts_with("projects/p/operations/"), "{out}");
    // The same from the environment.
    let (code, out, err) = longrun_exit(
        &[
            "operations",
            "describe",
            &name,
            "--server",
            base,
            "--format",
            "json",
        ],
        &[
            ("LONGRUN_CA_FILE", ca_file),
            ("LONGRUN_CLIENT_CERT_FILE", cert),
            ("LONGRUN_CLIENT_KEY_FILE", client_key),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("PENDING"), "{out}");
    // Without the client certificate, or without trusting the server's CA: no connection.
    let (code, _, err) = submit(&tls[..2]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = submit(&tls[2..]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot reach the server"), "{err}");
    // A CA file that is not one: a usage error, said as such.
    let (code, _, err) = submit(&["--ca-file", cert.replace(".crt", ".missing").as_str()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read certificates"), "{err}");

    // A key file whose token endpoint is https: exchanged over the same TLS.
    point_at(&key, base);
    let key = key.to_str().unwrap();
    let mut print = vec!["auth", "print-access-token", "--key-file", key];
    print.extend(tls);
    let (code, token, err) = longrun_exit(&print, &[]);
    assert_eq!(code, 0, "{err}");
    let mut args = vec![
        "operations",
        "cancel",
        &name,
        "--server",
        base,
        "--key-file",
        key,
    ];
    args.extend(tls);
    let (code, _, err) = longrun_exit(&args, &[]);
    assert_eq!(code, 0, "{err}");

    // curl, over HTTP/1.1 and HTTP/2 (ALPN), with the token it was given.
    let port = base.rsplit(':').next().unwrap();
    for version in ["--http1.1", "--http2"] {
        let out = Command::new("curl")
            .args([
                "-sS", version, "--cacert", ca_file, "--cert", cert, "--key", client_key,
            ])
            .args(["-H", &format!("Authorization: Bearer {}", token.trim())])
            .args(["-w", "\n%{http_code} %{http_version}"])
            .arg(format!("https://localhost:{port}/v1/{name}"))
            .output()
            .expect("curl runs");
        let text = String::from_utf8_lossy(&out.stdout);
        let status = text.lines().last().unwrap_or_default();
        let expected = if version == "--http2" {
            "200 2"
        } else {
            "200 1.1"
        };
        assert_eq!(
            status,
            expected,
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("CANCELLED"), "{text}");
    }
    // Without a client certificate, curl's handshake fails.
    let out = Command::new("curl")
        .args(["-sS", "--cacert", ca_file])
        .arg(format!("https://localhost:{port}/readyz"))
        .output()
        .expect("curl runs");
    assert!(!out.status.success());

    if let Some(python) = Python::from_env("tls_clients.py") {
        python.run_ok("tls_clients.py", &[base, ca_file, cert, client_key, &name]);
    }
}
