//! External identity providers: tokens they sign are checked against their JSON Web Key
//! Set, read from a file or fetched from a URL, kept, and read again when a token names a
//! key id it does not hold (at most every `REFRESH`). jsonwebtoken checks tokens but fetches
//! nothing; the fetch (hyper with rustls) is the few lines below.

use super::iam::Principal;
use super::{Verified, not_yet_valid, rejected, scopes, unauthenticated, validation};
use crate::kit::error::ApiError;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Header};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Shortest time between two reads of a provider's keys.
const REFRESH: Duration = Duration::from_secs(10);

/// Algorithms accepted from providers (never `none`, never HMAC: a public key is not a
/// secret).
const ALGORITHMS: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::ES384,
];

/// `[[auth.identity_provider]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub issuer: String,
    pub audience: String,
    pub jwks_file: Option<PathBuf>,
    /// An `https://` URL (or `http://`, for a provider on a trusted network).
    pub jwks_url: Option<String>,
    /// PEM certificates trusted for `jwks_url` besides the public roots (a private CA).
    pub ca_file: Option<PathBuf>,
    /// How long after its `exp`, and before its `nbf` or `iat`, a token is still accepted,
    /// for the provider's clock being ahead or behind (default 10 s, the clock skew Google's
    /// auth libraries allow).
    #[serde(default = "default_leeway", with = "crate::kit::config_duration")]
    pub leeway: std::time::Duration,
}

fn default_leeway() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

impl ProviderConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        match (&self.jwks_file, &self.jwks_url) {
            (Some(_), None) => Ok(()),
            (None, Some(url)) => {
                anyhow::ensure!(
                    url.starts_with("https://") || url.starts_with("http://"),
                    "identity provider {}: jwks_url must be an https:// (or http://) URL",
                    self.issuer
                );
                if let Some(ca) = &self.ca_file {
                    roots(Some(ca)).map_err(|e| {
                        anyhow::anyhow!("identity provider {}: ca_file: {e}", self.issuer)
                    })?;
                }
                Ok(())
            }
            _ => anyhow::bail!(
                "identity provider {}: give exactly one of jwks_file and jwks_url",
                self.issuer
            ),
        }
    }
}

pub struct Provider {
    config: ProviderConfig,
    keys: Mutex<Option<(JwkSet, Instant)>>,
}

impl Provider {
    pub fn new(config: ProviderConfig) -> Provider {
        Provider {
            config,
            keys: Mutex::new(None),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    async fn fetch(&self) -> anyhow::Result<JwkSet> {
        let text = match (&self.config.jwks_file, &self.config.jwks_url) {
            (Some(path), _) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || std::fs::read(path)).await??
            }
            (None, Some(url)) => get(url, self.config.ca_file.as_ref()).await?,
            (None, None) => anyhow::bail!("no key set configured"),
        };
        Ok(serde_json::from_slice(&text)?)
    }

    /// The key `kid` names, reading the key set again if it is not (yet) known.
    async fn key(&self, kid: Option<&str>) -> Option<jsonwebtoken::jwk::Jwk> {
        let mut keys = self.keys.lock().await;
        let find = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        if let Some(key) = keys.as_ref().and_then(|(set, _)| find(set)) {
            return Some(key);
        }
        if keys
            .as_ref()
            .is_some_and(|(_, read)| read.elapsed() < REFRESH)
        {
            return None;
        }
        match self.fetch().await {
            Ok(set) => {
                let key = find(&set);
                *keys = Some((set, Instant::now()));
                key
            }
            Err(e) => {
                tracing::warn!(issuer = %self.config.issuer, error = %e, "cannot read the identity provider's keys");
                None
            }
        }
    }

    pub async fn verify(&self, token: &str, header: &Header) -> Result<Verified, ApiError> {
        if !ALGORITHMS.contains(&header.alg) {
            return Err(unauthenticated(
                "ACCESS_TOKEN_INVALID",
                "the access token's algorithm is not accepted",
            ));
        }
        let jwk = self.key(header.kid.as_deref()).await.ok_or_else(|| {
            unauthenticated(
                "ACCESS_TOKEN_INVALID",
                "the access token's key is not among the provider's keys",
            )
        })?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| {
            unauthenticated("ACCESS_TOKEN_INVALID", "the provider's key is unusable")
        })?;
        let data = jsonwebtoken::decode::<serde_json::Value>(
            token,
            &key,
            &validation(
                header.alg,
                &self.config.issuer,
                &self.config.audience,
                self.config.leeway.as_secs(),
            ),
        )
        .map_err(rejected)?;
        let claims = &data.claims;
        // jsonwebtoken checked `exp` and `nbf`; an `iat` ahead of the clock is refused with
        // the same leeway, as Google's auth libraries refuse it.
        if let Some(iat) = claims.get("iat") {
            let issued = iat.as_f64().ok_or_else(|| {
                unauthenticated(
                    "ACCESS_TOKEN_INVALID",
                    "the access token's iat is not a time",
                )
            })?;
            let now = jsonwebtoken::get_current_timestamp() as f64;
            if issued > now + self.config.leeway.as_secs_f64() {
                return Err(not_yet_valid());
            }
        }
        let id = claims["email"]
            .as_str()
            .filter(|_| claims["email_verified"] != false)
            .or_else(|| claims["sub"].as_str())
            .filter(|id| !id.is_empty())
            .ok_or_else(|| {
                unauthenticated("ACCESS_TOKEN_INVALID", "the access token names nobody")
            })?;
        Ok(Verified {
            principal: Principal::User(id.to_string()),
            scopes: scopes(claims),
        })
    }
}

/// The public roots, and the certificates of `ca_file`.
fn roots(ca_file: Option<&PathBuf>) -> anyhow::Result<rustls::RootCertStore> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path)? {
            roots.add(cert?)?;
            added += 1;
        }
        anyhow::ensure!(added > 0, "{} holds no PEM certificate", path.display());
    }
    Ok(roots)
}

/// GETs `url` over https (or http), at most 1 MiB, within 10 s.
async fn get(url: &str, ca_file: Option<&PathBuf>) -> anyhow::Result<Vec<u8>> {
    use http_body_util::{BodyExt, Empty, Limited};
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots(ca_file)?)
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Empty<bytes::Bytes>>(connector);
    let uri: http::Uri = url.parse()?;
    let response = tokio::time::timeout(Duration::from_secs(10), client.get(uri)).await??;
    anyhow::ensure!(
        response.status().is_success(),
        "{url} answered {}",
        response.status()
    );
    let body = Limited::new(response.into_body(), 1 << 20)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read {url}: {e}"))?;
    Ok(body.to_bytes().to_vec())
}
