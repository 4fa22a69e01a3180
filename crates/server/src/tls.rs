//! `[tls]`: HTTPS and gRPC over TLS on the one listener (ALPN `h2` and `http/1.1`), the
//! certificate read again when its files change, and mTLS (`client_ca_file`): a client
//! must present a certificate that CA signed, and with auth on its identity (SAN URI, else
//! SAN email) may be bound as a `cert:` member (docs/deployment.md).

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio_rustls::rustls;

/// How often the files are looked at for a change.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// `[tls]` (all unset: plain HTTP).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The server's certificate chain, PEM, leaf first (`--tls-cert-file`,
    /// `LONGRUN_TLS_CERT_FILE`).
    pub cert_file: Option<PathBuf>,
    /// Its private key, PEM: PKCS#8, PKCS#1 or SEC1 (`--tls-key-file`,
    /// `LONGRUN_TLS_KEY_FILE`).
    pub key_file: Option<PathBuf>,
    /// CA certificates, PEM: clients must present a certificate one of them signed
    /// (`--tls-client-ca-file`, `LONGRUN_TLS_CLIENT_CA_FILE`).
    pub client_ca_file: Option<PathBuf>,
}

impl Settings {
    /// Whether TLS is on.
    pub fn enabled(&self) -> bool {
        self.cert_file.is_some()
    }

    /// Refuses a certificate without its key (and the other way round), and a client CA
    /// without TLS.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.cert_file.is_some() == self.key_file.is_some(),
            "tls: cert_file and key_file go together"
        );
        anyhow::ensure!(
            self.client_ca_file.is_none() || self.enabled(),
            "tls: client_ca_file needs cert_file and key_file"
        );
        Ok(())
    }
}

/// A verified client certificate, put in the extensions of each request of its connection.
#[derive(Debug, Clone)]
pub struct PeerCertificate {
    /// What it names: its first SAN URI, else its first SAN email (the member
    /// `cert:IDENTITY`); `None` when it names neither.
    pub identity: Option<String>,
}

impl PeerCertificate {
    /// The identity of a leaf certificate (DER).
    fn of(der: &[u8]) -> PeerCertificate {
        use x509_parser::extensions::GeneralName;
        let mut uri = None;
        let mut email = None;
        if let Ok((_, cert)) = x509_parser::parse_x509_certificate(der)
            && let Ok(Some(san)) = cert.subject_alternative_name()
        {
            for name in &san.value.general_names {
                match name {
                    GeneralName::URI(u) => {
                        uri.get_or_insert_with(|| u.to_string());
                    }
                    GeneralName::RFC822Name(e) => {
                        email.get_or_insert_with(|| e.to_string());
                    }
                    _ => {}
                }
            }
        }
        PeerCertificate {
            identity: uri.or(email),
        }
    }
}

/// The server's TLS configuration, replaced when its files change.
#[derive(Clone)]
pub struct Tls {
    settings: Arc<Settings>,
    current: Arc<RwLock<Loaded>>,
}

struct Loaded {
    config: Arc<rustls::ServerConfig>,
    /// What the files were when `config` was read.
    seen: Vec<Stamp>,
}

/// What tells a file's change: its modification time, size and inode.
#[derive(Debug, PartialEq)]
struct Stamp(Option<(SystemTime, u64, u64)>);

fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    Stamp(std::fs::metadata(path).ok().map(|m| {
        (
            m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            m.len(),
            m.ino(),
        )
    }))
}

impl Tls {
    /// Reads the files; `None` when TLS is off. Errors: a file that cannot be read, holds
    /// no certificate or key, or a key that is not the certificate's.
    pub fn load(settings: &Settings) -> anyhow::Result<Option<Tls>> {
        if !settings.enabled() {
            return Ok(None);
        }
        let settings = Arc::new(settings.clone());
        let loaded = read(&settings)?;
        Ok(Some(Tls {
            settings,
            current: Arc::new(RwLock::new(loaded)),
        }))
    }

    /// The configuration for the next connection.
    pub fn config(&self) -> Arc<rustls::ServerConfig> {
        self.current.read().expect("tls lock").config.clone()
    }

    /// Looks at the files every second and reads them again when one changed; a set that
    /// does not load (a certificate written before its key, say) is logged and the
    /// configuration in use kept, until the files change again. Runs until dropped.
    pub async fn reload_on_change(self) {
        let mut failed: Option<Vec<Stamp>> = None;
        loop {
            tokio::time::sleep(RELOAD_EVERY).await;
            let now = stamps(&self.settings);
            if now == self.current.read().expect("tls lock").seen || failed.as_ref() == Some(&now) {
                continue;
            }
            match read(&self.settings) {
                Ok(loaded) => {
                    *self.current.write().expect("tls lock") = loaded;
                    failed = None;
                    tracing::info!("tls: certificate files changed; new connections use them");
                }
                Err(e) => {
                    tracing::warn!(
                        error = %format!("{e:#}"),
                        "tls: the changed certificate files do not load; the previous ones stay in use"
                    );
                    failed = Some(now);
                }
            }
        }
    }
}

/// The stamps of the files of `settings`, in a fixed order.
fn stamps(settings: &Settings) -> Vec<Stamp> {
    [
        &settings.cert_file,
        &settings.key_file,
        &settings.client_ca_file,
    ]
    .into_iter()
    .flatten()
    .map(|path| stamp(path))
    .collect()
}

/// Reads the files into a server configuration with ALPN `h2` and `http/1.1`.
fn read(settings: &Settings) -> anyhow::Result<Loaded> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    // The stamps before the reads: a change during them is seen at the next look.
    let seen = stamps(settings);
    let (cert_file, key_file) = match (&settings.cert_file, &settings.key_file) {
        (Some(cert), Some(key)) => (cert, key),
        _ => anyhow::bail!("tls: cert_file and key_file go together"),
    };
    let certs = |path: &Path| -> anyhow::Result<Vec<CertificateDer<'static>>> {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| {
                anyhow::anyhow!("tls: cannot read certificates from {}: {e}", path.display())
            })?;
        anyhow::ensure!(
            !certs.is_empty(),
            "tls: {} holds no certificate",
            path.display()
        );
        Ok(certs)
    };
    let chain = certs(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        anyhow::anyhow!(
            "tls: cannot read a private key from {}: {e}",
            key_file.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &settings.client_ca_file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certs(path)? {
                roots.add(cert).map_err(|e| {
                    anyhow::anyhow!("tls: a certificate in {} is unusable: {e}", path.display())
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        anyhow::anyhow!(
            "tls: the key in {} does not go with the certificate in {}: {e}",
            key_file.display(),
            cert_file.display()
        )
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Loaded {
        config: Arc::new(config),
        seen,
    })
}

/// The TLS handshake on an accepted connection, within `timeout`; the stream and the
/// client certificate's identity (when one was verified).
pub async fn accept(
    config: Arc<rustls::ServerConfig>,
    stream: tokio::net::TcpStream,
    timeout: Duration,
) -> std::io::Result<(
    tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    Option<PeerCertificate>,
)> {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let stream = tokio::time::timeout(timeout, acceptor.accept(stream))
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
        })??;
    let peer = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| PeerCertificate::of(leaf));
    Ok((stream, peer))
}
