//! Authentication and access (docs/auth.md): bearer tokens checked on every call,
//! scopes, and project IAM. Tokens come from this server's `/token` (service accounts, signed
//! with the server secret) or from configured identity providers (checked against their JWKS).
//! Tokens and secrets are never logged.

mod accounts;
pub mod iam;
mod jwks;
pub mod token;

pub use accounts::{KeyFile, create_key, email, project_of};

use crate::kit::error::ApiError;
use iam::{Iam, Permission, Principal};
use jsonwebtoken::{Algorithm, Validation};
use longrun_store::Accounts;
use longrun_types::{Code, Project};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The scopes that open the operations API.
pub const SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/earthengine",
    "https://www.googleapis.com/auth/cloud-platform",
];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every call is allowed (only on loopback listeners, unless told otherwise).
    #[default]
    None,
    /// Every call needs a bearer token, and the permission for what it does.
    Oauth,
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    pub mode: Mode,
    /// Lifetime of the tokens `/token` issues.
    #[serde(with = "crate::kit::config_duration")]
    pub token_ttl: Duration,
    /// The token endpoint's URL as clients reach it: the audience that assertions must name.
    /// Default: `http://LISTEN/token` (`https://` with TLS).
    pub token_uri: Option<String>,
    /// A file holding the server secret (at least 32 bytes), instead of the one generated
    /// into the data directory.
    pub secret_file: Option<PathBuf>,
    #[serde(rename = "identity_provider")]
    pub identity_providers: Vec<jwks::ProviderConfig>,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            mode: Mode::None,
            token_ttl: Duration::from_secs(3600),
            token_uri: None,
            secret_file: None,
            identity_providers: Vec::new(),
        }
    }
}

/// Who is calling, once their token has been checked.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `None` when auth is off.
    pub principal: Option<Principal>,
    scopes: Vec<String>,
    /// The bearer token the caller showed, kept so that a stream can check it again.
    token: Option<Secret>,
}

/// A credential kept in memory: never printed (`Debug` hides it).
#[derive(Clone)]
struct Secret(Arc<str>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// How often a stream checks its caller's credentials again (`Auth::revoked`).
pub const RECHECK: Duration = Duration::from_secs(5);

impl Caller {
    /// What audit records name: the member, or nothing when auth is off.
    pub fn member(&self) -> String {
        self.principal
            .as_ref()
            .map(Principal::member)
            .unwrap_or_default()
    }
}

#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    mode: Mode,
    iam: Iam,
    tokens: token::Tokens,
    providers: Vec<jwks::Provider>,
}

impl Auth {
    pub fn new(
        config: &AuthConfig,
        iam: Iam,
        secret: &[u8],
        token_uri: String,
        store: Arc<dyn Accounts>,
    ) -> anyhow::Result<Auth> {
        Ok(Auth {
            inner: Arc::new(Inner {
                mode: config.mode,
                iam,
                tokens: token::Tokens::new(secret, token_uri, config.token_ttl, store)?,
                providers: config
                    .identity_providers
                    .iter()
                    .cloned()
                    .map(jwks::Provider::new)
                    .collect(),
            }),
        })
    }

    pub fn enabled(&self) -> bool {
        self.inner.mode == Mode::Oauth
    }

    /// The configured bindings.
    pub fn iam(&self) -> &Iam {
        &self.inner.iam
    }

    pub fn tokens(&self) -> &token::Tokens {
        &self.inner.tokens
    }

    /// Checks the request's bearer token (the `Authorization` header, or the
    /// `access_token` query parameter); without one, a verified client certificate that
    /// names an identity (`peer`) is the caller, as the member `cert:IDENTITY`, with every
    /// scope of the API. With auth off, everyone is let in.
    pub async fn authenticate(
        &self,
        headers: &http::HeaderMap,
        query: Option<&str>,
        peer: Option<&crate::tls::PeerCertificate>,
    ) -> Result<Caller, ApiError> {
        if !self.enabled() {
            return Ok(Caller {
                principal: None,
                scopes: Vec::new(),
                token: None,
            });
        }
        match (
            bearer(headers, query)?,
            peer.and_then(|p| p.identity.as_ref()),
        ) {
            (Some(token), _) => self.verify(token).await,
            (None, Some(identity)) => Ok(Caller {
                principal: Some(Principal::Certificate(identity.clone())),
                scopes: SCOPES.iter().map(|s| s.to_string()).collect(),
                token: None,
            }),
            (None, None) => Err(unauthenticated(
                "CREDENTIALS_MISSING",
                "the request has no access token",
            )),
        }
    }

    /// Checks a bearer token: its signature, issuer, audience and times, and for the
    /// server's own tokens that the service account is still enabled.
    async fn verify(&self, token: &str) -> Result<Caller, ApiError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| {
            unauthenticated("ACCESS_TOKEN_INVALID", "the access token is malformed")
        })?;
        let claims = match header.alg {
            Algorithm::HS256 => self.inner.tokens.verify(token).await?,
            _ => {
                let issuer = jsonwebtoken::dangerous::insecure_decode::<Claims>(token)
                    .map(|t| t.claims.iss)
                    .map_err(|_| {
                        unauthenticated("ACCESS_TOKEN_INVALID", "the access token is malformed")
                    })?;
                let provider = self
                    .inner
                    .providers
                    .iter()
                    .find(|p| issuer.as_deref() == Some(p.issuer()))
                    .ok_or_else(|| {
                        unauthenticated(
                            "ACCESS_TOKEN_INVALID",
                            "the access token's issuer is not trusted",
                        )
                    })?;
                provider.verify(token, &header).await?
            }
        };
        Ok(Caller {
            principal: Some(claims.principal),
            scopes: claims.scopes,
            token: Some(Secret(token.into())),
        })
    }

    /// Resolves with the error a new call would get once the credentials `caller` opened a
    /// stream with no longer hold: the token expired, its service account was disabled or
    /// deleted, or it lost `permission` on the project (or, with none, the API's scopes).
    /// Checked every [`RECHECK`]; never resolves with auth off. Streams (watch, the `Work`
    /// stream) end with this error rather than keep serving a caller that plain calls
    /// would refuse.
    pub async fn revoked(
        &self,
        caller: &Caller,
        permission: Option<(Permission, Project)>,
    ) -> ApiError {
        let Some(Secret(token)) = caller.token.clone().filter(|_| self.enabled()) else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(RECHECK).await;
            let checked = self
                .verify(&token)
                .await
                .and_then(|fresh| match &permission {
                    Some((permission, project)) => {
                        self.check(&fresh, *permission, project.as_str())
                    }
                    None => self.check_scope(&fresh),
                });
            if let Err(e) = checked {
                return e;
            }
        }
    }

    /// Whether `caller` may do what needs `permission` on `project`. Checked before the
    /// operation is looked up, so a 403 says nothing about whether it exists.
    pub fn check(
        &self,
        caller: &Caller,
        permission: Permission,
        project: &str,
    ) -> Result<(), ApiError> {
        let Some(principal) = self.scoped(caller)? else {
            return Ok(());
        };
        if self.inner.iam.allows(principal, permission, project) {
            return Ok(());
        }
        Err(denied(permission, &format!("projects/{project}")))
    }

    /// Whether `caller`'s token carries a scope of this API (for methods that need no
    /// permission on a project).
    pub fn check_scope(&self, caller: &Caller) -> Result<(), ApiError> {
        self.scoped(caller).map(|_| ())
    }

    /// The projects whose operations `caller` may lease: `None` for all.
    pub fn lease_scope(&self, caller: &Caller) -> Result<Option<Vec<String>>, ApiError> {
        let Some(principal) = self.scoped(caller)? else {
            return Ok(None);
        };
        match self.inner.iam.scope(principal, Permission::WorkersExecute) {
            Some(projects) if projects.is_empty() => {
                Err(denied(Permission::WorkersExecute, "projects/*"))
            }
            scope => Ok(scope),
        }
    }

    /// The caller's principal once its scopes are checked; `None` with auth off.
    fn scoped<'c>(&self, caller: &'c Caller) -> Result<Option<&'c Principal>, ApiError> {
        let Some(principal) = &caller.principal else {
            return Ok(None);
        };
        if !caller.scopes.iter().any(|s| SCOPES.contains(&s.as_str())) {
            return Err(ApiError::new(
                Code::PermissionDenied,
                "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                format!(
                    "the access token lacks the scopes this method needs: one of {}",
                    SCOPES.join(", ")
                ),
            ));
        }
        Ok(Some(principal))
    }
}

fn denied(permission: Permission, resource: &str) -> ApiError {
    ApiError::new(
        Code::PermissionDenied,
        "IAM_PERMISSION_DENIED",
        format!(
            "permission '{}' denied on resource '{resource}'",
            permission.as_str()
        ),
    )
    .with("permission", permission.as_str())
    .with("resource", resource)
}

pub fn unauthenticated(reason: &'static str, message: &str) -> ApiError {
    let mut e = ApiError::new(Code::Unauthenticated, reason, message);
    e.www_authenticate = true;
    e
}

/// The token of `Authorization: Bearer …`, or of `access_token=…`.
fn bearer<'a>(
    headers: &'a http::HeaderMap,
    query: Option<&'a str>,
) -> Result<Option<&'a str>, ApiError> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| {
            unauthenticated("ACCESS_TOKEN_INVALID", "the access token is malformed")
        })?;
        let Some((scheme, token)) = value.trim().split_once(' ') else {
            return Ok(None);
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(unauthenticated(
                "ACCESS_TOKEN_TYPE_UNSUPPORTED",
                "only Bearer credentials are accepted",
            ));
        }
        let token = token.trim();
        return Ok((!token.is_empty()).then_some(token));
    }
    Ok(query.and_then(|query| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("access_token="))
            .filter(|t| !t.is_empty())
    }))
}

/// What a verified token says, whoever issued it.
pub struct Verified {
    pub principal: Principal,
    pub scopes: Vec<String>,
}

/// The claims read before a token's signature is checked: only to pick the key.
#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
}

/// The scopes of `scope` (space-separated) or `scp` (a list or a string).
fn scopes(claims: &serde_json::Value) -> Vec<String> {
    let words = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    match (&claims["scope"], &claims["scp"]) {
        (serde_json::Value::String(s), _) | (_, serde_json::Value::String(s)) => words(s),
        (_, serde_json::Value::Array(list)) => list
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Validation common to every token: one algorithm, issuer, audience, and `exp` checked
/// with `leeway` seconds for the signer's clock. With no leeway (a token of this server's
/// own clock) the token is refused from the second of its `exp` on.
fn validation(algorithm: Algorithm, issuer: &str, audience: &str, leeway: u64) -> Validation {
    let mut v = Validation::new(algorithm);
    v.set_issuer(&[issuer]);
    v.set_audience(&[audience]);
    v.leeway = leeway;
    // A token whose `nbf` is more than the leeway ahead is refused (not yet valid).
    v.validate_nbf = true;
    // jsonwebtoken accepts a token while `exp >= now - leeway`; this makes it `exp > now`.
    v.reject_tokens_expiring_in_less_than = u64::from(leeway == 0);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v
}

/// The 401 of a token whose `nbf` or `iat` is ahead of the clock by more than the leeway.
fn not_yet_valid() -> ApiError {
    unauthenticated(
        "ACCESS_TOKEN_INVALID",
        "the access token is not valid yet (its nbf or iat is ahead of the server's clock)",
    )
}

/// A verification failure as the 401 it answers.
fn rejected(e: jsonwebtoken::errors::Error) -> ApiError {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => {
            unauthenticated("ACCESS_TOKEN_EXPIRED", "the access token has expired")
        }
        ErrorKind::ImmatureSignature => not_yet_valid(),
        ErrorKind::InvalidAudience => unauthenticated(
            "ACCESS_TOKEN_INVALID",
            "the access token is for another audience",
        ),
        ErrorKind::InvalidIssuer => unauthenticated(
            "ACCESS_TOKEN_INVALID",
            "the access token's issuer is not trusted",
        ),
        ErrorKind::InvalidSignature => unauthenticated(
            "ACCESS_TOKEN_INVALID",
            "the access token's signature does not verify",
        ),
        _ => unauthenticated("ACCESS_TOKEN_INVALID", "the access token is invalid"),
    }
}

/// `items`, ended by `revoked` (`Auth::revoked`) with one last item made from its error.
pub fn until_revoked<T: Send + 'static>(
    items: impl futures_util::Stream<Item = T> + Send + 'static,
    revoked: impl std::future::Future<Output = ApiError> + Send + 'static,
    last: impl FnOnce(ApiError) -> T + Send + 'static,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    use futures_util::StreamExt;
    let state = (Box::pin(items), Some(Box::pin(revoked)), Some(last));
    futures_util::stream::unfold(state, |(mut items, mut revoked, mut last)| async move {
        let guard = revoked.as_mut()?;
        tokio::select! {
            item = items.next() => item.map(|item| (item, (items, revoked, last))),
            error = guard => last.take().map(|last| (last(error), (items, None, None))),
        }
    })
}
