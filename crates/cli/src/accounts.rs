//! `longrun service-accounts`: registers service accounts and writes their key files. It
//! works on a server's store directly (the embedded one in a data directory, or
//! PostgreSQL), needing no running server (a running one sees changes within a second), or
//! remotely with `--server URL` and the credentials (`--token`, `--key-file`) of a member
//! holding `roles/longrun.serviceAccountAdmin` on the project. Either way the key pair is
//! made here: the private key goes only into the key file.

use clap::Subcommand;
use http::Method;
use longrun_server::migrate::Location;
use longrun_store::ServiceAccount;
use longrun_types::Timestamp;
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where the accounts are: a store, or a server.
#[derive(clap::Args)]
pub struct Place {
    /// The server's data directory (its embedded store).
    #[arg(
        long,
        env = "LONGRUN_DATA_DIR",
        default_value = "./longrun-data",
        global = true
    )]
    pub(crate) data_dir: PathBuf,
    /// The server's PostgreSQL database, instead of a data directory.
    #[arg(
        long,
        env = "LONGRUN_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub(crate) database_url: Option<String>,
    /// A running server to manage accounts through, instead of its store.
    #[arg(long, global = true)]
    pub(crate) server: Option<String>,
}

/// A place, and the credentials sent to `--server`.
#[derive(clap::Args)]
pub struct Store {
    #[command(flatten)]
    pub(crate) place: Place,
    #[command(flatten)]
    pub(crate) credentials: crate::auth::Credentials,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create an account and write its key file (Google's service-account format).
    Create {
        /// The account's name: NAME@PROJECT.iam.longrun.
        name: String,
        #[arg(long)]
        project: String,
        /// Where to write the new account's key file [default: NAME.json]. (With
        /// `--server`, a key file to authenticate with is named by LONGRUN_KEY_FILE.)
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// The server's token endpoint as clients reach it.
        #[arg(long, default_value = "http://127.0.0.1:8080/token")]
        token_uri: String,
        /// Do nothing, successfully, when the key file exists already: a first start's
        /// bootstrap that runs before every start (a container's init step).
        #[arg(long)]
        if_missing: bool,
        #[command(flatten)]
        place: Place,
        /// Bearer token for `--server` [env: LONGRUN_TOKEN].
        #[arg(long)]
        token: Option<String>,
        #[command(flatten)]
        tls: crate::auth::TlsArgs,
    },
    /// List the accounts.
    List {
        /// Only this project's accounts (required with --server).
        #[arg(long)]
        project: Option<String>,
        #[command(flatten)]
        store: Store,
    },
    /// Stop an account getting tokens; the tokens it holds stop working.
    Disable {
        #[command(flatten)]
        account: Account,
        #[command(flatten)]
        store: Store,
    },
    /// Let a disabled account get tokens again.
    Enable {
        #[command(flatten)]
        account: Account,
        #[command(flatten)]
        store: Store,
    },
    /// Remove an account; its tokens stop working.
    Delete {
        #[command(flatten)]
        account: Account,
        #[command(flatten)]
        store: Store,
    },
}

/// An existing account: its email, or, as `create` takes it, its name and `--project`.
#[derive(clap::Args)]
pub struct Account {
    /// The account: NAME@PROJECT.iam.longrun, or NAME with --project.
    account: String,
    /// The account's project, when it is given by name.
    #[arg(long)]
    project: Option<String>,
}

impl Account {
    /// The account's email.
    fn email(&self) -> anyhow::Result<String> {
        match (&self.project, self.account.contains('@')) {
            (None, true) => Ok(self.account.clone()),
            (Some(project), false) => longrun_server::auth::email(&self.account, project),
            (Some(project), true) => {
                anyhow::ensure!(
                    project_of(&self.account)? == project,
                    "{} is not an account of project {project}",
                    self.account
                );
                Ok(self.account.clone())
            }
            (None, false) => anyhow::bail!(
                "{} is an account name: give its project with --project, or its email",
                self.account
            ),
        }
    }
}

/// What a `--data-dir`/`--database-url`/`--server` choice opened: a store opened here, or a
/// server's REST API (`service-accounts` and `projects` commands).
pub(crate) enum Target {
    Store(std::sync::Arc<dyn longrun_store::Store>),
    Server(Box<longrun_client::Client>),
}

impl Store {
    pub(crate) async fn open(&self) -> anyhow::Result<Target> {
        self.place.open(&self.credentials).await
    }
}

impl Place {
    /// The store, or the server with `credentials`.
    pub(crate) async fn open(
        &self,
        credentials: &crate::auth::Credentials,
    ) -> anyhow::Result<Target> {
        if let Some(server) = &self.server {
            return Ok(Target::Server(Box::new(credentials.client(server).await?)));
        }
        let location = match &self.database_url {
            Some(url) => Location::Database(url.clone()),
            None => Location::DataDir(self.data_dir.clone()),
        };
        let store = location.open().await.map_err(|e| match &location {
            // A server running on the directory holds its lock: go through the server.
            Location::DataDir(dir) => e.context(format!(
                "cannot open the store in {} (while a server runs on it, pass --server URL \
                 to go through the server)",
                dir.display()
            )),
            Location::Database(_) => e,
        })?;
        Ok(Target::Store(store))
    }
}

/// The project an account belongs to, from its email.
fn project_of(email: &str) -> anyhow::Result<&str> {
    longrun_server::auth::project_of(email)
        .ok_or_else(|| anyhow::anyhow!("{email} is not an account of a longrun server"))
}

impl Target {
    /// Registers the account; false when it exists.
    async fn create(&self, account: &ServiceAccount, name: &str) -> anyhow::Result<bool> {
        match self {
            Target::Store(store) => Ok(store.create_account(account.clone()).await?),
            Target::Server(client) => {
                let body = json!({
                    "accountId": name,
                    "keyId": account.key_id,
                    "publicKeyPem": account.public_key_pem,
                });
                let path = format!("/v1/projects/{}/serviceAccounts", account.project);
                match client.call(Method::POST, &path, Some(&body)).await {
                    Ok(_) => Ok(true),
                    Err(longrun_client::Error::Api {
                        http_status: 409, ..
                    }) => Ok(false),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    async fn list(&self, project: Option<&str>) -> anyhow::Result<Vec<ServiceAccount>> {
        let mut accounts = match self {
            Target::Store(store) => store.accounts().await?,
            Target::Server(client) => {
                let project = project
                    .ok_or_else(|| anyhow::anyhow!("--project is required with --server"))?;
                let path = format!("/v1/projects/{project}/serviceAccounts");
                let answer = client.call(Method::GET, &path, None).await?;
                let accounts = answer["accounts"].as_array().cloned().unwrap_or_default();
                accounts
                    .iter()
                    .map(|a| {
                        Ok(ServiceAccount {
                            email: text(a, "email")?,
                            project: text(a, "projectId")?,
                            key_id: text(a, "keyId")?,
                            public_key_pem: String::new(),
                            disabled: a["disabled"].as_bool().unwrap_or_default(),
                            create_time: Timestamp::parse(&text(a, "createTime")?)
                                .map_err(|e| anyhow::anyhow!(e))?,
                        })
                    })
                    .collect::<anyhow::Result<_>>()?
            }
        };
        accounts.retain(|a| project.is_none_or(|p| a.project == p));
        Ok(accounts)
    }

    /// Disables or enables the account; false when there is none.
    async fn set_disabled(&self, email: &str, disabled: bool) -> anyhow::Result<bool> {
        match self {
            Target::Store(store) => Ok(store.set_account_disabled(email, disabled).await?),
            Target::Server(client) => {
                let verb = if disabled { "disable" } else { "enable" };
                let path = format!(
                    "/v1/projects/{}/serviceAccounts/{email}:{verb}",
                    project_of(email)?
                );
                found(client.call(Method::POST, &path, Some(&json!({}))).await)
            }
        }
    }

    /// Removes the account; false when there is none.
    async fn delete(&self, email: &str) -> anyhow::Result<bool> {
        match self {
            Target::Store(store) => Ok(store.delete_account(email).await?),
            Target::Server(client) => {
                let path = format!(
                    "/v1/projects/{}/serviceAccounts/{email}",
                    project_of(email)?
                );
                found(client.call(Method::DELETE, &path, None).await)
            }
        }
    }
}

fn text(value: &Value, key: &str) -> anyhow::Result<String> {
    value[key]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("the server's answer lacks `{key}`: {value}"))
}

/// A server's answer as "it was there": a 404 is false.
fn found(answer: Result<Value, longrun_client::Error>) -> anyhow::Result<bool> {
    match answer {
        Ok(_) => Ok(true),
        Err(longrun_client::Error::Api {
            http_status: 404, ..
        }) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub async fn run(command: Command) -> ExitCode {
    match execute(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(crate::operations::exit_code_of(&e))
        }
    }
}

async fn execute(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Create {
            name,
            project,
            key_file,
            token_uri,
            if_missing,
            place,
            token,
            tls,
        } => {
            let path = key_file.unwrap_or_else(|| PathBuf::from(format!("{name}.json")));
            if if_missing && path.exists() {
                println!("{} exists: nothing created", path.display());
                return Ok(());
            }
            let (account, file) =
                longrun_server::auth::create_key(&name, &project, &token_uri, Timestamp::now())?;
            // The key file is claimed first, so that an account is never registered
            // without the only copy of its private key.
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut out = options
                .open(&path)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            let credentials = crate::auth::Credentials {
                token,
                key_file: None,
                tls,
            };
            let registered = match place.open(&credentials).await {
                Ok(registry) => registry.create(&account, &name).await,
                Err(e) => Err(e),
            };
            match registered {
                Ok(true) => {}
                outcome => {
                    let _ = std::fs::remove_file(&path);
                    outcome?;
                    anyhow::bail!("{} already exists", account.email);
                }
            }
            out.write_all(&serde_json::to_vec_pretty(&file)?)?;
            println!(
                "created {} (key {}); key file {}",
                account.email,
                account.key_id,
                path.display()
            );
        }
        Command::List { project, store } => {
            for a in store.open().await?.list(project.as_deref()).await? {
                let state = if a.disabled { "DISABLED" } else { "ENABLED" };
                println!("{}\t{}\t{state}\t{}", a.email, a.key_id, a.create_time);
            }
        }
        Command::Disable { account, store } => {
            set_disabled(&store, &account.email()?, true).await?;
        }
        Command::Enable { account, store } => {
            set_disabled(&store, &account.email()?, false).await?;
        }
        Command::Delete { account, store } => {
            let email = account.email()?;
            anyhow::ensure!(
                store.open().await?.delete(&email).await?,
                "no service account {email}"
            );
            println!("deleted {email}");
        }
    }
    Ok(())
}

async fn set_disabled(store: &Store, email: &str, disabled: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        store.open().await?.set_disabled(email, disabled).await?,
        "no service account {email}"
    );
    println!("{} {email}", if disabled { "disabled" } else { "enabled" });
    Ok(())
}
