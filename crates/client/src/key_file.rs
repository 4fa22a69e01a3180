//! Service-account key files in Google's format (what `longrun service-accounts create`
//! writes): an access token for the account, got as Google's auth libraries get one. The
//! client signs a JWT-bearer assertion (RFC 7523) with the file's private key (RS256, its
//! `private_key_id` as `kid`) and exchanges it at the file's `token_uri` (docs/auth.md).

use crate::{Client, Error};
use http::Method;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The scope asked for when none is given: it opens the whole operations API.
pub const DEFAULT_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// How long the assertion is valid for, in seconds (Google's libraries use an hour, the
/// most a token endpoint takes).
const ASSERTION_LIFETIME: u64 = 3600;

/// The JWT-bearer grant type of RFC 7523.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// The fields of a key file this client reads; the others are ignored.
#[derive(Debug, Deserialize)]
pub struct KeyFile {
    #[serde(skip)]
    path: PathBuf,
    /// `service_account`.
    #[serde(rename = "type")]
    kind: String,
    private_key_id: String,
    /// The RSA private key, PEM (PKCS#8 or PKCS#1).
    private_key: String,
    /// The account, the assertion's issuer.
    pub client_email: String,
    /// Where assertions are exchanged for access tokens.
    pub token_uri: String,
}

/// An access token and how long it lives.
#[derive(Debug, Clone, Deserialize)]
pub struct AccessToken {
    pub access_token: String,
    /// Seconds from when it was issued.
    #[serde(default)]
    pub expires_in: u64,
}

impl KeyFile {
    /// Reads and checks a key file. Errors (`Error::Credentials`): the file cannot be read,
    /// is not JSON, or is not a service account's key file.
    pub fn read(path: &Path) -> Result<KeyFile, Error> {
        let bad =
            |why: String| Error::Credentials(format!("the key file {}: {why}", path.display()));
        let text = std::fs::read(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
        let mut key: KeyFile = serde_json::from_slice(&text).map_err(|e| {
            bad(format!(
                "is not a service account's key file in Google's format ({e})"
            ))
        })?;
        if key.kind != "service_account" {
            return Err(bad(format!(
                "has type {:?}, not \"service_account\"",
                key.kind
            )));
        }
        key.path = path.to_path_buf();
        Ok(key)
    }

    /// The signed assertion for `scope` (space-separated scopes), issued now.
    pub fn assertion(&self, scope: &str) -> Result<String, Error> {
        let key =
            jsonwebtoken::EncodingKey::from_rsa_pem(self.private_key.as_bytes()).map_err(|e| {
                Error::Credentials(format!(
                    "the key file {}: its private_key is not an RSA key in PEM ({e})",
                    self.path.display()
                ))
            })?;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = Some(self.private_key_id.clone());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let claims = serde_json::json!({
            "iss": self.client_email,
            "sub": self.client_email,
            "aud": self.token_uri,
            "scope": scope,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
        });
        jsonwebtoken::encode(&header, &claims, &key)
            .map_err(|e| Error::Credentials(format!("cannot sign the assertion: {e}")))
    }

    /// Exchanges a fresh assertion for an access token at `token_uri` (over `https://`,
    /// trusting what `tls` says). Errors: `Error::Transport` when the endpoint cannot be
    /// reached, `Error::Credentials` with the endpoint's OAuth error (RFC 6749 section 5.2)
    /// when it refuses, `Error::Tls`.
    pub async fn access_token(&self, scope: &str, tls: &crate::Tls) -> Result<AccessToken, Error> {
        let assertion = self.assertion(scope)?;
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", JWT_BEARER)
            .append_pair("assertion", &assertion)
            .finish();
        let uri: http::Uri = self.token_uri.parse().map_err(|_| {
            Error::Credentials(format!(
                "the key file {}: token_uri {:?} is not a URL",
                self.path.display(),
                self.token_uri
            ))
        })?;
        let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
            return Err(Error::Credentials(format!(
                "the key file {}: token_uri {:?} is not an absolute URL",
                self.path.display(),
                self.token_uri
            )));
        };
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let response = Client::with_tls(&format!("{scheme}://{authority}"), tls)?
            .send_as(
                Method::POST,
                path,
                Some(form.as_bytes()),
                "application/x-www-form-urlencoded",
            )
            .await?;
        let answer = response.json();
        if response.status == 200
            && let Ok(token) = serde_json::from_value::<AccessToken>(answer.clone())
        {
            return Ok(token);
        }
        let field = |k: &str| answer[k].as_str().unwrap_or_default().to_string();
        Err(Error::Credentials(format!(
            "the token endpoint {} refused the key file {} ({}): {} {}",
            self.token_uri,
            self.path.display(),
            response.status,
            field("error"),
            field("error_description"),
        )))
    }
}
