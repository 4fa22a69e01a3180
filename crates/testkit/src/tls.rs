//! Certificates for TLS tests: a CA of their own (rcgen), server certificates for
//! `localhost` and 127.0.0.1, client certificates naming a SAN URI or email, written as PEM
//! files; and an HTTPS/1.1 client that presents one and reports what the server showed.

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls;

/// A certificate authority that issues test certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// Its certificate, PEM.
    pub pem: String,
}

/// A certificate and its key, as PEM files.
pub struct Issued {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// The certificate, DER, to tell which one a server showed.
    pub der: Vec<u8>,
}

impl Ca {
    /// A new CA called `name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
        }
    }

    /// Writes the CA's certificate to `path`.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, &self.pem).unwrap();
        path.to_path_buf()
    }

    /// A server certificate for `localhost` and 127.0.0.1, written as `STEM.crt` and
    /// `STEM.key` in `dir` (replaced whole, by rename, if they exist).
    pub fn server(&self, dir: &Path, stem: &str) -> Issued {
        let params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        self.issue(params, dir, stem)
    }

    /// A client certificate naming `name` (a URI when it has a scheme, else an email).
    pub fn client(&self, dir: &Path, stem: &str, name: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        let value = name.to_string().try_into().unwrap();
        params.subject_alt_names = vec![if name.contains("://") {
            SanType::URI(value)
        } else {
            SanType::Rfc822Name(value)
        }];
        self.issue(params, dir, stem)
    }

    fn issue(&self, params: CertificateParams, dir: &Path, stem: &str) -> Issued {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let write = |name: String, text: String| {
            let path = dir.join(&name);
            let partial = dir.join(format!(".{name}.partial"));
            std::fs::write(&partial, text).unwrap();
            std::fs::rename(&partial, &path).unwrap();
            path
        };
        Issued {
            cert_file: write(format!("{stem}.crt"), cert.pem()),
            key_file: write(format!("{stem}.key"), key.serialize_pem()),
            der: cert.der().to_vec(),
        }
    }
}

/// What one HTTPS request saw.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// The certificate the server showed, DER.
    pub server_cert: Vec<u8>,
}

/// `METHOD path` (with a JSON `body`, if any) over HTTPS/1.1 to 127.0.0.1:`port`, trusting
/// `ca_file` and presenting `client` (if any). Errors: the handshake's or the connection's.
pub async fn request(
    port: u16,
    method: &str,
    path: &str,
    body: Option<&str>,
    ca_file: &Path,
    client: Option<&Issued>,
) -> std::io::Result<Answer> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        Some(issued) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(&issued.cert_file)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(&issued.key_file).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let server_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.to_vec())
        .unwrap_or_default();
    let body = body.unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    // A server that ends the connection without close_notify still answered.
    match tls.read_to_end(&mut response).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e),
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok(Answer {
        status,
        body,
        server_cert,
    })
}
