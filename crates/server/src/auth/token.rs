//! Tokens this server issues: `POST /token` takes a service account's signed assertion
//! (the JWT-bearer grant of RFC 7523, as Google's auth libraries send it) and answers an
//! access token, itself a JWT signed with the server secret (HS256), which every server
//! sharing the store can check. An account that is disabled or deleted gets no new tokens,
//! and the tokens it holds stop working within `ACCOUNT_CACHE`.

use super::iam::Principal;
use super::{Verified, rejected, scopes, unauthenticated, validation};
use crate::kit::error::ApiError;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use longrun_store::{Accounts, ServiceAccount};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Issuer and audience of the tokens this server issues.
const ISSUER: &str = "longrun";
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The audience Google's auth libraries put in every assertion, whatever the key file's
/// `token_uri`: accepted beside this server's own token URI. (The keys are this server's
/// own, so an assertion for Google made with one could only ever come from this server's
/// accounts.)
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// Longest an assertion may live, as Google allows.
const MAX_ASSERTION: u64 = 3600;
/// Clock skew allowed on the `exp` of a service account's assertion (signed by its own clock).
const ASSERTION_LEEWAY: Duration = Duration::from_secs(60);
/// How long a looked-up account is trusted before it is read again.
const ACCOUNT_CACHE: Duration = Duration::from_secs(1);

pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    token_uri: String,
    ttl: Duration,
    store: Arc<dyn Accounts>,
    accounts: Mutex<HashMap<String, (Option<ServiceAccount>, Instant)>>,
}

/// An error of the token endpoint, in OAuth's form (RFC 6749 section 5.2).
#[derive(Debug)]
pub struct GrantError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

impl GrantError {
    fn invalid_grant(description: impl Into<String>) -> GrantError {
        GrantError {
            status: 400,
            error: "invalid_grant",
            description: description.into(),
        }
    }

    pub fn body(&self) -> serde_json::Value {
        json!({"error": self.error, "error_description": self.description})
    }
}

#[derive(Deserialize)]
struct AccessClaims {
    sub: String,
    /// The id of the key whose assertion earned the token.
    key: String,
}

#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    iat: Option<u64>,
    exp: u64,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Tokens {
    pub fn new(
        secret: &[u8],
        token_uri: String,
        ttl: Duration,
        store: Arc<dyn Accounts>,
    ) -> anyhow::Result<Tokens> {
        Ok(Tokens {
            encoding: EncodingKey::from_secret(secret)?,
            decoding: DecodingKey::from_secret(secret)?,
            token_uri,
            ttl,
            store,
            accounts: Mutex::new(HashMap::new()),
        })
    }

    pub fn token_uri(&self) -> &str {
        &self.token_uri
    }

    /// The account as stored, read again once the cached copy is older than
    /// `ACCOUNT_CACHE`.
    async fn account(&self, email: &str) -> Result<Option<ServiceAccount>, ApiError> {
        if let Some((account, read)) = self.accounts.lock().expect("accounts lock").get(email)
            && read.elapsed() < ACCOUNT_CACHE
        {
            return Ok(account.clone());
        }
        let account = self
            .store
            .account(email)
            .await
            .map_err(longrun_engine::Error::from)?;
        self.accounts
            .lock()
            .expect("accounts lock")
            .insert(email.to_string(), (account.clone(), Instant::now()));
        Ok(account)
    }

    /// Checks an access token this server issued.
    pub async fn verify(&self, token: &str) -> Result<Verified, ApiError> {
        let data = jsonwebtoken::decode::<serde_json::Value>(
            token,
            &self.decoding,
            &validation(Algorithm::HS256, ISSUER, ISSUER, 0),
        )
        .map_err(rejected)?;
        let claims: AccessClaims = serde_json::from_value(data.claims.clone())
            .map_err(|_| unauthenticated("ACCESS_TOKEN_INVALID", "the access token is invalid"))?;
        match self.account(&claims.sub).await? {
            Some(account) if !account.disabled && account.key_id == claims.key => Ok(Verified {
                principal: Principal::ServiceAccount(claims.sub),
                scopes: scopes(&data.claims),
            }),
            _ => Err(unauthenticated(
                "ACCOUNT_STATE_INVALID",
                "the service account is disabled or deleted",
            )),
        }
    }

    /// `POST /token` on a server with auth off: any well-formed JWT-bearer request (an
    /// RS256 JWT with `iss` and `exp`) gets a token, without looking for the account, since
    /// no call checks tokens. So a key file made for another server (or for this one before
    /// auth was turned off) works with Google's libraries and the `earthengine` CLI.
    pub fn grant_unchecked(&self, form: &[u8]) -> Result<serde_json::Value, GrantError> {
        let (_, _, claims) = assertion(form)?;
        tracing::info!(account = %claims.iss, "auth is off: issued an unchecked access token");
        Ok(json!({
            "access_token": "auth-off",
            "expires_in": self.ttl.as_secs(),
            "token_type": "Bearer",
        }))
    }

    /// `POST /token`: the JWT-bearer grant. `form` is the urlencoded request body.
    pub async fn grant(&self, form: &[u8]) -> Result<serde_json::Value, GrantError> {
        let (assertion, header, unverified) = assertion(form)?;
        let assertion = &assertion;
        let account = self
            .store
            .account(&unverified.iss)
            .await
            .map_err(|_| GrantError {
                status: 500,
                error: "server_error",
                description: "cannot read the service accounts".into(),
            })?
            .filter(|a| !a.disabled)
            .ok_or_else(|| {
                GrantError::invalid_grant("no such service account, or it is disabled")
            })?;
        if header
            .kid
            .as_deref()
            .is_some_and(|kid| kid != account.key_id)
        {
            return Err(GrantError::invalid_grant(
                "the assertion's key id is not the account's key",
            ));
        }
        let key = DecodingKey::from_rsa_pem(account.public_key_pem.as_bytes())
            .map_err(|_| GrantError::invalid_grant("the account's public key is unusable"))?;
        let mut checks = validation(
            Algorithm::RS256,
            &account.email,
            &self.token_uri,
            ASSERTION_LEEWAY.as_secs(),
        );
        checks.set_audience(&[self.token_uri.as_str(), GOOGLE_TOKEN_URI]);
        let data = jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &checks)
            .map_err(|e| GrantError::invalid_grant(format!("the assertion is not valid: {e}")))?;
        let issued_at = unverified
            .iat
            .ok_or_else(|| GrantError::invalid_grant("the assertion lacks iat"))?;
        if unverified.exp.saturating_sub(issued_at) > MAX_ASSERTION || issued_at > now() + 60 {
            return Err(GrantError::invalid_grant(
                "the assertion lives longer than an hour or is issued in the future",
            ));
        }
        let scope = scopes(&data.claims).join(" ");
        let ttl = self.ttl.as_secs();
        let issued = now();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &json!({
                "iss": ISSUER,
                "aud": ISSUER,
                "sub": account.email,
                "email": account.email,
                "key": account.key_id,
                "scope": scope,
                "iat": issued,
                "exp": issued + ttl,
            }),
            &self.encoding,
        )
        .map_err(|_| GrantError {
            status: 500,
            error: "server_error",
            description: "cannot sign the token".into(),
        })?;
        tracing::info!(account = %account.email, %scope, "issued an access token");
        Ok(json!({
            "access_token": token,
            "expires_in": ttl,
            "token_type": "Bearer",
            "scope": scope,
        }))
    }
}

/// The assertion of a JWT-bearer request, its header and its unverified claims.
fn assertion(form: &[u8]) -> Result<(String, jsonwebtoken::Header, AssertionClaims), GrantError> {
    let fields: HashMap<String, String> = form_urlencoded::parse(form).into_owned().collect();
    let invalid_request = |d: &str| GrantError {
        status: 400,
        error: "invalid_request",
        description: d.to_string(),
    };
    match fields.get("grant_type").map(String::as_str) {
        Some(JWT_BEARER) => {}
        Some(_) => {
            return Err(GrantError {
                status: 400,
                error: "unsupported_grant_type",
                description: format!("only {JWT_BEARER} is supported"),
            });
        }
        None => return Err(invalid_request("grant_type is required")),
    }
    let assertion = fields
        .get("assertion")
        .ok_or_else(|| invalid_request("assertion is required"))?;
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| GrantError::invalid_grant("the assertion is not a JWT"))?;
    if header.alg != Algorithm::RS256 {
        return Err(GrantError::invalid_grant(
            "the assertion must be signed with RS256",
        ));
    }
    let unverified = jsonwebtoken::dangerous::insecure_decode::<AssertionClaims>(assertion)
        .map_err(|_| GrantError::invalid_grant("the assertion lacks iss or exp"))?
        .claims;
    Ok((assertion.clone(), header, unverified))
}
