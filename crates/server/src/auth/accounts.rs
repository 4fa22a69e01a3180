//! Service-account keys in Google's key-file format, so that Google's auth libraries use
//! them unchanged: the file holds the private key, the server keeps the public half.

use longrun_store::ServiceAccount;
use longrun_types::Timestamp;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde::Serialize;

/// A service-account key file with exactly the fields of Google's, in Google's order and
/// forms, so that Google's auth libraries and tools read it as one of theirs. No other
/// field: the `earthengine` CLI copies every key of the file named by
/// `--service_account_file` into its settings, so an extra `project` (which versions before
/// this one wrote) overrode the configured project. `auth_uri`, `auth_provider_x509_cert_url`
/// and `client_x509_cert_url` are written as Google writes them; nothing reads them for a
/// service account (tokens come from `token_uri`), and longrun serves none of them.
#[derive(Debug, Serialize)]
pub struct KeyFile {
    /// Always `service_account`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub project_id: String,
    /// The key's id, the `kid` of what it signs.
    pub private_key_id: String,
    /// The RSA private key, PKCS#8 PEM.
    pub private_key: String,
    pub client_email: String,
    /// A decimal number, as Google's.
    pub client_id: String,
    pub auth_uri: String,
    /// Where the key's JWT-bearer assertions are exchanged for tokens: this server's `/token`.
    pub token_uri: String,
    pub auth_provider_x509_cert_url: String,
    pub client_x509_cert_url: String,
    /// `googleapis.com`: Google's libraries exchange assertions at `token_uri` only in that
    /// universe (in another they sign their own tokens, which this server does not take).
    pub universe_domain: &'static str,
}

/// Google's authorization endpoint, as every Google key file names it.
const AUTH_URI: &str = "https://accounts.google.com/o/oauth2/auth";
/// Google's certificates, as every Google key file names them.
const AUTH_PROVIDER_CERTS: &str = "https://www.googleapis.com/oauth2/v1/certs";
/// Where Google publishes an account's certificates, followed by its email (`@` encoded).
const CLIENT_CERTS: &str = "https://www.googleapis.com/robot/v1/metadata/x509/";

fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The account `NAME@PROJECT.iam.longrun`, once `name` and `project` are checked.
pub fn email(name: &str, project: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        (6..=longrun_types::limits::ACCOUNT_NAME).contains(&name.len())
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
        client_x509_cert_url: format!("{CLIENT_CERTS}{}", email.replace('@', "%40")),
        client_email: email,
        client_id,
        auth_uri: AUTH_URI.to_string(),
        token_uri: token_uri.to_string(),
        auth_provider_x509_cert_url: AUTH_PROVIDER_CERTS.to_string(),
        universe_domain: "googleapis.com",
    };
    Ok((account, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file holds Google's keys, in Google's order, and nothing else.
    #[test]
    fn key_files_hold_exactly_googles_fields() {
        let (account, file) =
            create_key("ci-runner", "my-proj", "http://h/token", Timestamp(1)).unwrap();
        let json = serde_json::to_value(&file).unwrap();
        let mut sorted: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        sorted.sort();
        let mut google = vec![
            "type",
            "project_id",
            "private_key_id",
            "private_key",
            "client_email",
            "client_id",
            "auth_uri",
            "token_uri",
            "auth_provider_x509_cert_url",
            "client_x509_cert_url",
            "universe_domain",
        ];
        let order = google.clone();
        google.sort();
        assert_eq!(sorted, google);
        let text = serde_json::to_string(&file).unwrap();
        let positions: Vec<usize> = order
            .iter()
            .map(|k| text.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        assert_eq!(json["client_email"], "ci-runner@my-proj.iam.longrun");
        assert_eq!(
            json["client_x509_cert_url"],
            "https://www.googleapis.com/robot/v1/metadata/x509/ci-runner%40my-proj.iam.longrun"
        );
        assert_eq!(json["private_key_id"], account.key_id);
        assert!(
            json["client_id"]
                .as_str()
                .unwrap()
                .bytes()
                .all(|b| b.is_ascii_digit())
        );
    }
}
