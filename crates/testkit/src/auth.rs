//! Credentials as Google's clients make them: service accounts and their key files, the
//! JWT-bearer assertions a key signs and their exchange at `/token`, and an identity
//! provider's key with its JWKS.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The scope Earth Engine's clients ask for.
pub const EARTHENGINE_SCOPE: &str = "https://www.googleapis.com/auth/earthengine";

/// Seconds since the epoch, for `iat` and `exp`.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `claims` signed RS256 with a key file's `private_key` (PKCS#8 PEM) under its
/// `private_key_id`, as Google's libraries sign assertions.
pub fn assertion(private_key: &str, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_string());
    let key = EncodingKey::from_rsa_pem(private_key.as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

/// Exchanges `assertion` at the server's `/token` (the JWT-bearer grant): the status and
/// the answer.
pub async fn exchange(base: &str, assertion: &str) -> (u16, Value) {
    let form = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
    );
    let response = longrun_client::Client::new(base)
        .send(http::Method::POST, "/token", Some(form.as_bytes()))
        .await
        .unwrap();
    (response.status, response.json())
}

/// An access token for the key file's account, from the server at `base`.
pub async fn access_token(base: &str, key_file: &Path) -> String {
    let key = longrun_client::KeyFile::read(key_file).unwrap();
    let signed = key.assertion(EARTHENGINE_SCOPE).unwrap();
    let (status, answer) = exchange(base, &signed).await;
    assert_eq!(status, 200, "{answer}");
    answer["access_token"].as_str().unwrap().to_string()
}

/// Creates the service account NAME of PROJECT in the store of `data` offline with
/// `longrun service-accounts create`, before a server runs on it (a running server holds
/// its data directory), with its key file in `dir`; the key names no real token endpoint
/// until [`point_at`] gives it the server's. Returns the key file's path.
pub fn create_account(data: &Path, name: &str, project: &str, dir: &Path) -> PathBuf {
    let key = dir.join(format!("{name}.json"));
    crate::process::longrun_ok(
        &[
            "service-accounts",
            "create",
            name,
            "--project",
            project,
            "--key-file",
            key.to_str().unwrap(),
            "--token-uri",
            "http://127.0.0.1:9/token",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    key
}

/// Points the key file at the token endpoint of the server at `base`, known once it listens.
pub fn point_at(key: &Path, base: &str) {
    let mut file: Value = serde_json::from_slice(&std::fs::read(key).unwrap()).unwrap();
    file["token_uri"] = format!("{base}/token").into();
    std::fs::write(key, serde_json::to_vec_pretty(&file).unwrap()).unwrap();
}

/// An identity provider's signing key: a fresh RSA key with an id.
pub struct IdpKey {
    kid: String,
    key: EncodingKey,
    jwk: Value,
}

impl IdpKey {
    pub fn generate(kid: &str) -> IdpKey {
        use base64::Engine;
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        use rsa::traits::PublicKeyParts;
        let private = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048).unwrap();
        let public = private.to_public_key();
        let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let jwk = json!({
            "kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
            "n": b64(public.n().to_be_bytes().to_vec()),
            "e": b64(public.e().to_be_bytes().to_vec()),
        });
        let pem = private.to_pkcs8_pem(LineEnding::LF).unwrap();
        IdpKey {
            kid: kid.to_string(),
            key: EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap(),
            jwk,
        }
    }

    /// The public half, as a JWK.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// Writes the key set holding this key alone to `path` (`[auth] jwks` files).
    pub fn write_jwks(&self, path: &Path) {
        std::fs::write(path, json!({"keys": [self.jwk]}).to_string()).unwrap();
    }

    /// `claims` signed RS256 under this key's id.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}
