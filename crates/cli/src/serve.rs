//! `longrun serve`: flags and environment over the config file, tracing, signals.

use longrun_server::Config;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "LONGRUN_LISTEN")]
    listen: Option<SocketAddr>,
    /// Directory of the embedded store and the server secret [default: ./longrun-data].
    #[arg(long, env = "LONGRUN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Where operations are kept: sqlite (embedded, the default) or postgres.
    #[arg(long, env = "LONGRUN_STORE", value_parser = ["sqlite", "postgres"])]
    store: Option<String>,
    /// PostgreSQL URL for --store postgres.
    #[arg(long, env = "LONGRUN_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Serve a non-loopback address with no authentication.
    #[arg(long, env = "LONGRUN_ALLOW_UNAUTHENTICATED")]
    allow_unauthenticated: bool,
    /// TOML configuration file.
    #[arg(long, env = "LONGRUN_CONFIG")]
    config: Option<PathBuf>,
}

pub async fn run(args: Args) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LONGRUN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    match serve(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(data_dir) = args.data_dir {
        config.data_dir = data_dir;
    }
    config.allow_unauthenticated |= args.allow_unauthenticated;
    match args.store.as_deref() {
        Some("postgres") => config.store = longrun_server::config::StoreKind::Postgres,
        Some(_) => config.store = longrun_server::config::StoreKind::Sqlite,
        None => {}
    }
    if args.database_url.is_some() {
        config.database_url = args.database_url;
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    longrun_server::run(config, listener, shutdown_signal()).await
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install the SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
