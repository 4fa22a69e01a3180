//! `longrun service-accounts`: registers service accounts in a server's store and writes
//! their key files. It works on the store directly (the embedded one in a data directory,
//! or PostgreSQL), so it needs no running server; a running server sees changes within a
//! second.

use clap::Subcommand;
use longrun_server::migrate::Location;
use longrun_types::Timestamp;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Store {
    /// The server's data directory (its embedded store).
    #[arg(
        long,
        env = "LONGRUN_DATA_DIR",
        default_value = "./longrun-data",
        global = true
    )]
    data_dir: PathBuf,
    /// The server's PostgreSQL database, instead of a data directory.
    #[arg(
        long,
        env = "LONGRUN_DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    database_url: Option<String>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create an account and write its key file (Google's service-account format).
    Create {
        /// The account's name: NAME@PROJECT.iam.longrun.
        name: String,
        #[arg(long)]
        project: String,
        /// Where to write the key file [default: NAME.json].
        #[arg(long)]
        key_file: Option<PathBuf>,
        /// The server's token endpoint as clients reach it.
        #[arg(long, default_value = "http://127.0.0.1:8080/token")]
        token_uri: String,
        #[command(flatten)]
        store: Store,
    },
    /// List the accounts.
    List {
        #[command(flatten)]
        store: Store,
    },
    /// Stop an account getting tokens; the tokens it holds stop working.
    Disable {
        email: String,
        #[command(flatten)]
        store: Store,
    },
    /// Let a disabled account get tokens again.
    Enable {
        email: String,
        #[command(flatten)]
        store: Store,
    },
    /// Remove an account; its tokens stop working.
    Delete {
        email: String,
        #[command(flatten)]
        store: Store,
    },
}

impl Store {
    async fn open(&self) -> anyhow::Result<std::sync::Arc<dyn longrun_store::Store>> {
        match &self.database_url {
            Some(url) => Location::Database(url.clone()),
            None => Location::DataDir(self.data_dir.clone()),
        }
        .open()
        .await
    }
}

pub async fn run(command: Command) -> ExitCode {
    match execute(command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
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
            store,
        } => {
            let (account, file) =
                longrun_server::auth::create_key(&name, &project, &token_uri, Timestamp::now())?;
            let path = key_file.unwrap_or_else(|| PathBuf::from(format!("{name}.json")));
            let store = store.open().await?;
            anyhow::ensure!(
                store.create_account(account.clone()).await?,
                "{} already exists",
                account.email
            );
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let written = options
                .open(&path)
                .and_then(|mut f| f.write_all(&serde_json::to_vec_pretty(&file)?));
            if let Err(e) = written {
                store.delete_account(&account.email).await?;
                anyhow::bail!("cannot write {}: {e}", path.display());
            }
            println!(
                "created {} (key {}); key file {}",
                account.email,
                account.key_id,
                path.display()
            );
        }
        Command::List { store } => {
            for a in store.open().await?.accounts().await? {
                let state = if a.disabled { "DISABLED" } else { "ENABLED" };
                println!("{}\t{}\t{state}\t{}", a.email, a.key_id, a.create_time);
            }
        }
        Command::Disable { email, store } => set_disabled(&store, &email, true).await?,
        Command::Enable { email, store } => set_disabled(&store, &email, false).await?,
        Command::Delete { email, store } => {
            anyhow::ensure!(
                store.open().await?.delete_account(&email).await?,
                "no service account {email}"
            );
            println!("deleted {email}");
        }
    }
    Ok(())
}

async fn set_disabled(store: &Store, email: &str, disabled: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        store
            .open()
            .await?
            .set_account_disabled(email, disabled)
            .await?,
        "no service account {email}"
    );
    println!("{} {email}", if disabled { "disabled" } else { "enabled" });
    Ok(())
}
