//! Service-account keys in Google's key-file format, so that Google's auth libraries use
//! them unchanged: the file holds the private key, the server keeps the public half.

use longrun_store::ServiceAccount;
use longrun_types::Timestamp;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde::Serialize;

/// A key file as Google writes them (the fields its libraries read).
#[derive(Debug, Serialize)]
pub struct KeyFile {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub project_id: String,
    pub private_key_id: String,
    pub private_key: String,
    pub client_email: String,
    pub client_id: String,
    pub token_uri: String,
    /// Not in Google's files: the `earthengine` CLI reads every key of the file named by
    /// `--service_account_file` into its configuration, so this makes the account's
    /// project the CLI's project when none is set (instead of `earthengine-legacy`).
    /// Google's libraries ignore it.
    pub project: String,
}

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The account `NAME@PROJECT.iam.longrun`, once `name` and `project` are checked.
pub fn email(name: &str, project: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        (6..=30).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "a service account name is 6 to 30 lowercase letters, digits and hyphens, starting \
         with a letter"
    );
    longrun_types::Project::parse(project).map_err(|e| anyhow::anyhow!(e))?;
    Ok(format!("{name}@{project}.iam.longrun"))
}

/// The project of an account's email, if it is one of this server's.
pub fn project_of(email: &str) -> Option<&str> {
    email
        .split_once('@')?
        .1
        .strip_suffix(".iam.longrun")
        .filter(|p| !p.is_empty())
}

/// A new account `NAME@PROJECT.iam.longrun` with a fresh 2048-bit RSA key: the record to
/// store and the key file to hand out. The private key exists only in the key file.
pub fn create_key(
    name: &str,
    project: &str,
    token_uri: &str,
    now: Timestamp,
) -> anyhow::Result<(ServiceAccount, KeyFile)> {
    let email = email(name, project)?;
    let key = rsa::PrivateKey::new(&mut getrandom::SysRng, 2048)?;
    let private_key = key.to_pkcs8_pem(LineEnding::LF)?.to_string();
    let public_key_pem = key.to_public_key().to_public_key_pem(LineEnding::LF)?;
    let key_id = random_hex(20)?;
    let client_id = u128::from_str_radix(&random_hex(8)?, 16)?.to_string();
    let account = ServiceAccount {
        email: email.clone(),
        project: project.to_string(),
        key_id: key_id.clone(),
        public_key_pem,
        disabled: false,
        create_time: now,
    };
    let file = KeyFile {
        kind: "service_account",
        project_id: project.to_string(),
        private_key_id: key_id,
        private_key,
        client_email: email,
        client_id,
        token_uri: token_uri.to_string(),
        project: project.to_string(),
    };
    Ok((account, file))
}
