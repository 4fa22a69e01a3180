//! How the CLI authenticates to a server: a bearer token (`--token`, `LONGRUN_TOKEN`) or a
//! service account's key file (`--key-file`, `LONGRUN_KEY_FILE`), exchanged for a token at
//! its `token_uri` as Google's libraries do; and `longrun auth print-access-token`.

use clap::Subcommand;
use longrun_client::{Client, DEFAULT_SCOPE, Error, KeyFile, Tls};
use std::path::PathBuf;
use std::process::ExitCode;

/// The credentials every command that talks to a server takes. An option given on the
/// command line wins over the environment; two of one kind are refused.
#[derive(clap::Args, Clone)]
pub struct Credentials {
    /// Bearer token sent with every request (for a server in auth mode `oauth`) [env:
    /// LONGRUN_TOKEN].
    #[arg(long, global = true, conflicts_with = "key_file")]
    pub(crate) token: Option<String>,
    /// A service account's key file (Google's format): its access token is got from the
    /// file's token_uri and sent with every request [env: LONGRUN_KEY_FILE].
    #[arg(long, global = true)]
    pub(crate) key_file: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) tls: TlsArgs,
}

/// How the CLI trusts an `https://` server and shows itself to one that requires a client
/// certificate.
#[derive(clap::Args, Clone, Default)]
pub struct TlsArgs {
    /// CA certificates (PEM) to trust beside the public roots.
    #[arg(long, env = "LONGRUN_CA_FILE", global = true)]
    ca_file: Option<PathBuf>,
    /// A client certificate chain (PEM) for a server that requires one; with
    /// --client-key-file.
    #[arg(
        long,
        env = "LONGRUN_CLIENT_CERT_FILE",
        global = true,
        requires = "client_key_file"
    )]
    client_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(
        long,
        env = "LONGRUN_CLIENT_KEY_FILE",
        global = true,
        requires = "client_cert_file"
    )]
    client_key_file: Option<PathBuf>,
}

impl TlsArgs {
    pub(crate) fn tls(&self) -> Tls {
        Tls {
            ca_file: self.ca_file.clone(),
            client_cert: self
                .client_cert_file
                .clone()
                .zip(self.client_key_file.clone()),
        }
    }
}

impl Credentials {
    /// A client for `server` (over https, trusting and showing what the TLS options say)
    /// sending these credentials. A key file is exchanged for a token here, once: a token
    /// lives an hour (the server's `[auth] token_ttl`). Errors: the key file's
    /// (`Error::Credentials`, also for both variables set), the TLS files'
    /// (`Error::Tls`), or the token endpoint unreachable.
    pub(crate) async fn client(&self, server: &str) -> Result<Client, Error> {
        let tls = self.tls.tls();
        let client = Client::with_tls(server, &tls)?;
        let (token, key_file) = match (&self.token, &self.key_file) {
            (None, None) => {
                let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
                match (var("LONGRUN_TOKEN"), var("LONGRUN_KEY_FILE")) {
                    (Some(_), Some(_)) => {
                        return Err(Error::Credentials(
                            "both LONGRUN_TOKEN and LONGRUN_KEY_FILE are set: unset one, or \
                             pass --token or --key-file"
                                .into(),
                        ));
                    }
                    (token, key_file) => (
                        token.map(|t| t.to_string_lossy().into_owned()),
                        key_file.map(PathBuf::from),
                    ),
                }
            }
            (token, key_file) => (token.clone(), key_file.clone()),
        };
        if let Some(path) = key_file {
            let token = KeyFile::read(&path)?
                .access_token(DEFAULT_SCOPE, &tls)
                .await?;
            return Ok(client.with_token(&token.access_token));
        }
        Ok(match token {
            Some(token) => client.with_token(&token),
            None => client,
        })
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Print an access token for a service account's key file (what `--key-file` sends),
    /// as `gcloud auth print-access-token` does.
    PrintAccessToken {
        /// The service account's key file [env: LONGRUN_KEY_FILE].
        #[arg(long, env = "LONGRUN_KEY_FILE")]
        key_file: PathBuf,
        /// The scopes asked for, separated by commas.
        #[arg(long, value_delimiter = ',', default_value = DEFAULT_SCOPE)]
        scopes: Vec<String>,
        #[command(flatten)]
        tls: TlsArgs,
    },
}

pub async fn run(command: Command) -> ExitCode {
    let Command::PrintAccessToken {
        key_file,
        scopes,
        tls,
    } = command;
    let token = match KeyFile::read(&key_file) {
        Ok(key) => key.access_token(&scopes.join(" "), &tls.tls()).await,
        Err(e) => Err(e),
    };
    match token {
        Ok(token) => {
            println!("{}", token.access_token);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(crate::operations::exit_code(&e))
        }
    }
}
