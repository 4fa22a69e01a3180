//! Service accounts over REST (a feature of the REST adapter alone), for `longrun service-accounts --server`
//! (docs/auth.md#service-accounts). The client makes the key pair and sends only the public half,
//! so a private key never crosses the network and the server never holds one.

use crate::auth::{Caller, project_of};
use crate::kit::body;
use crate::kit::error::ApiError;
use crate::kit::json::json_body;
use axum::response::Response;
use longrun_store::{Accounts, ServiceAccount};
use longrun_types::{Code, Project, Timestamp, limits};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    account_id: String,
    key_id: String,
    public_key_pem: String,
}

/// The wire form of an account (never with key material beyond the public key's id).
fn render(a: &ServiceAccount) -> Value {
    json!({
        "name": format!("projects/{}/serviceAccounts/{}", a.project, a.email),
        "email": a.email,
        "projectId": a.project,
        "keyId": a.key_id,
        "disabled": a.disabled,
        "createTime": a.create_time.to_string(),
    })
}

/// A store failure as the engine maps it: 400 for text no store holds, 503 when storage is
/// unavailable, else 500 (logged).
fn storage(e: longrun_store::Error) -> ApiError {
    longrun_engine::Error::from(e).into()
}

fn not_found(email: &str) -> ApiError {
    ApiError::new(
        Code::NotFound,
        "SERVICE_ACCOUNT_NOT_FOUND",
        format!("service account {email} not found"),
    )
    .with("email", email)
}

/// An account email from the path, which must belong to `project`: the permission was
/// checked on that project.
pub fn email_in(project: &Project, segment: &str) -> Result<String, ApiError> {
    // Emails of this server's accounts hold only `[a-z0-9.@-]`; clients may encode the `@`.
    let email = segment.replace("%40", "@");
    if project_of(&email) != Some(project.as_str()) {
        return Err(not_found(&email));
    }
    Ok(email)
}

pub async fn create(
    store: &dyn Accounts,
    caller: &Caller,
    project: &Project,
    bytes: &[u8],
) -> Result<Response, ApiError> {
    let b: CreateBody = body::json(bytes)?;
    limits::check("accountId", &b.account_id, limits::ACCOUNT_NAME)?;
    limits::check("keyId", &b.key_id, limits::KEY_ID)?;
    let email = crate::auth::email(&b.account_id, project.as_str()).map_err(|e| {
        ApiError::invalid("INVALID_ARGUMENT", e.to_string()).with("field", "accountId")
    })?;
    if b.key_id.is_empty() || !b.key_id.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(
            ApiError::invalid("INVALID_ARGUMENT", "keyId is 1 to 64 hexadecimal digits")
                .with("field", "keyId"),
        );
    }
    if jsonwebtoken::DecodingKey::from_rsa_pem(b.public_key_pem.as_bytes()).is_err() {
        return Err(ApiError::invalid(
            "INVALID_ARGUMENT",
            "publicKeyPem is not an RSA public key in PEM",
        )
        .with("field", "publicKeyPem"));
    }
    let account = ServiceAccount {
        email,
        project: project.as_str().to_string(),
        key_id: b.key_id,
        public_key_pem: b.public_key_pem,
        disabled: false,
        create_time: Timestamp::now(),
    };
    if !store
        .create_account(account.clone())
        .await
        .map_err(storage)?
    {
        return Err(ApiError::new(
            Code::AlreadyExists,
            "SERVICE_ACCOUNT_EXISTS",
            format!("service account {} already exists", account.email),
        )
        .with("email", account.email));
    }
    tracing::info!(account = %account.email, by = %caller.member(), "service account created");
    Ok(json_body(&render(&account)))
}

pub async fn list(store: &dyn Accounts, project: &Project) -> Result<Response, ApiError> {
    let accounts: Vec<Value> = store
        .accounts()
        .await
        .map_err(storage)?
        .iter()
        .filter(|a| a.project == project.as_str())
        .map(render)
        .collect();
    Ok(json_body(&json!({ "accounts": accounts })))
}

pub async fn set_disabled(
    store: &dyn Accounts,
    caller: &Caller,
    email: &str,
    disabled: bool,
) -> Result<Response, ApiError> {
    if !store
        .set_account_disabled(email, disabled)
        .await
        .map_err(storage)?
    {
        return Err(not_found(email));
    }
    let what = if disabled { "disabled" } else { "enabled" };
    tracing::info!(account = %email, by = %caller.member(), "service account {what}");
    let account = store.account(email).await.map_err(storage)?;
    Ok(json_body(
        &account.as_ref().map(render).unwrap_or(json!({})),
    ))
}

pub async fn delete(
    store: &dyn Accounts,
    caller: &Caller,
    email: &str,
) -> Result<Response, ApiError> {
    if !store.delete_account(email).await.map_err(storage)? {
        return Err(not_found(email));
    }
    tracing::info!(account = %email, by = %caller.member(), "service account deleted");
    Ok(json_body(&json!({})))
}
