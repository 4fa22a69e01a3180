//! The `longrun` binary: `serve` runs the server, `operations` talks to one.

mod accounts;
mod auth;
mod operations;
mod output;
mod projects;
mod queues;
mod schedules;
mod serve;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "longrun",
    version,
    about = "A server for long-running operations"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(serve::Args),
    /// Inspect and manage operations on a running server.
    #[command(subcommand)]
    Operations(operations::Command),
    /// Credentials: an access token from a service account's key file.
    #[command(subcommand)]
    Auth(auth::Command),
    /// Manage service accounts and their key files.
    #[command(subcommand)]
    ServiceAccounts(accounts::Command),
    /// Manage the project registry (docs/projects.md#registry).
    #[command(subcommand)]
    Projects(projects::Command),
    /// Manage schedules: operations submitted at the fire times of a cron pattern
    /// (docs/schedules.md).
    #[command(subcommand)]
    Schedules(schedules::Command),
    /// Queues: a project's operations of one type; their counts, pause and resume
    /// (docs/queues.md).
    #[command(subcommand)]
    Queues(queues::Command),
    /// Copy a whole store to another: operations, assets, schedules, service accounts and
    /// projects (stop the servers first).
    MigrateStore(MigrateStore),
}

#[derive(clap::Args)]
struct MigrateStore {
    /// Copy from the embedded store in this data directory.
    #[arg(
        long,
        conflicts_with = "from_database_url",
        required_unless_present = "from_database_url"
    )]
    from_data_dir: Option<std::path::PathBuf>,
    /// Copy from this PostgreSQL database.
    #[arg(long)]
    from_database_url: Option<String>,
    /// Copy into the embedded store in this data directory.
    #[arg(
        long,
        conflicts_with = "to_database_url",
        required_unless_present = "to_database_url"
    )]
    to_data_dir: Option<std::path::PathBuf>,
    /// Copy into this PostgreSQL database.
    #[arg(long)]
    to_database_url: Option<String>,
}

async fn migrate_store(args: MigrateStore) -> ExitCode {
    use longrun_server::migrate::{Location, copy};
    let location = |dir: Option<std::path::PathBuf>, url: Option<String>| match (dir, url) {
        (Some(dir), _) => Location::DataDir(dir),
        (None, Some(url)) => Location::Database(url),
        (None, None) => unreachable!("clap requires one of them"),
    };
    let from = location(args.from_data_dir, args.from_database_url);
    let to = location(args.to_data_dir, args.to_database_url);
    match copy(&from, &to).await {
        Ok(n) => {
            println!(
                "copied {n} operations from {:?} to {:?} and checked them",
                from.kind(),
                to.kind()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Command::Serve(args) => runtime.block_on(serve::run(args)),
        Command::Operations(command) => runtime.block_on(operations::run(command)),
        Command::Auth(command) => runtime.block_on(auth::run(command)),
        Command::ServiceAccounts(command) => runtime.block_on(accounts::run(command)),
        Command::Projects(command) => runtime.block_on(projects::run(command)),
        Command::Schedules(command) => runtime.block_on(schedules::run(command)),
        Command::Queues(command) => runtime.block_on(queues::run(command)),
        Command::MigrateStore(args) => runtime.block_on(migrate_store(args)),
    }
}
