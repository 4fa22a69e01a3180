//! `longrun serve`: flags and environment over the config file, logs and traces, signals.

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
    /// Log format on stderr: text (the default) or json (one object per line).
    #[arg(long, env = "LONGRUN_LOG_FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,
    /// Serve HTTPS and gRPC over TLS with this certificate chain (PEM); with --tls-key-file.
    #[arg(long, env = "LONGRUN_TLS_CERT_FILE")]
    tls_cert_file: Option<PathBuf>,
    /// The private key of --tls-cert-file (PEM).
    #[arg(long, env = "LONGRUN_TLS_KEY_FILE")]
    tls_key_file: Option<PathBuf>,
    /// Require client certificates signed by these CAs (PEM): mTLS.
    #[arg(long, env = "LONGRUN_TLS_CLIENT_CA_FILE")]
    tls_client_ca_file: Option<PathBuf>,
    /// OTLP/gRPC collector to export traces to, http://HOST:PORT (off when unset).
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

pub async fn run(args: Args) -> ExitCode {
    let set_up = configure(args).and_then(|config| {
        let telemetry = longrun_server::telemetry::init(&config.log, &config.tracing)?;
        Ok((config, telemetry))
    });
    let (config, telemetry) = match set_up {
        Ok(set_up) => set_up,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let served = serve(config).await;
    if let Err(e) = &served {
        tracing::error!("{e:#}");
    }
    // The spans of the last requests go out before the process ends.
    telemetry.shutdown().await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The config file, then environment and flags over it.
fn configure(args: Args) -> anyhow::Result<Config> {
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
    match args.log_format.as_deref() {
        Some("json") => config.log.format = longrun_server::telemetry::LogFormat::Json,
        Some(_) => config.log.format = longrun_server::telemetry::LogFormat::Text,
        None => {}
    }
    for (flag, setting) in [
        (args.tls_cert_file, &mut config.tls.cert_file),
        (args.tls_key_file, &mut config.tls.key_file),
        (args.tls_client_ca_file, &mut config.tls.client_ca_file),
    ] {
        if flag.is_some() {
            *setting = flag;
        }
    }
    if let Some(endpoint) = args.otlp_endpoint.filter(|e| !e.is_empty()) {
        config.tracing.otlp_endpoint = Some(endpoint);
    }
    Ok(config)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // The handlers are in place before the port opens: a SIGTERM that follows the first
    // answer is a graceful stop, never the default action's kill.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    };
    longrun_server::run(config, listener, shutdown).await
}
