//! `longrun-bench`: starts a `longrun` server, loads it from this process and prints each
//! figure of the performance targets, then a summary table; the `postgres` scenario starts two
//! servers sharing a PostgreSQL store. Missed targets are reported, not failed: the exit code
//! is non-zero only when something went wrong.

mod cascade;
mod fairness;
mod listing;
mod load;
mod pause;
mod procfs;
mod scale;
mod scenarios;
mod scheduled;
mod schedules;
mod server;
mod soak;
mod summary;
mod watch;
mod workers;

use anyhow::Context;
use clap::{Parser, ValueEnum};
use longrun_testkit::postgres::Schema;
use scenarios::Setup;
use server::Server;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use summary::Summary;

#[derive(Parser)]
#[command(
    name = "longrun-bench",
    version,
    about = "Measures a longrun server: get, submit, cancel, list, memory, SDK workers and the \
             built-in executor; and two servers sharing a PostgreSQL store"
)]
struct Args {
    /// The `longrun` binary to run [default: `longrun` next to this executable].
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// Operations stored for the list and memory figures.
    #[arg(long, default_value_t = 1_000_000)]
    operations: usize,
    /// Length of each timed run, in seconds.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent clients for submit, get and cancel.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Concurrent clients for the list runs.
    #[arg(long, default_value_t = 8)]
    list_clients: usize,
    /// Running operations cancelled, one at a time, for the cancel-running, cancel-stream and
    /// cancel-builtin figures.
    #[arg(long, default_value_t = 200)]
    rounds: usize,
    /// No-op operations queued and then drained by SDK workers for the throughput figure.
    #[arg(long, default_value_t = 20_000)]
    drain: usize,
    /// Which figures to measure; `list` and `rss` share one seeded server and print both.
    /// `postgres` (submit, cancel running across servers, drain on two servers sharing a
    /// PostgreSQL store) is not part of `all`.
    #[arg(long, value_enum, default_value = "all")]
    scenario: Scenario,
    /// Concurrent watch streams for the `watch` scenario.
    #[arg(long, default_value_t = 1000)]
    watchers: usize,
    /// Schedules created for the `schedules` scenario.
    #[arg(long, default_value_t = 10_000)]
    schedules: usize,
    /// Operations seeded into one project for the `scale` scenario.
    #[arg(long, default_value_t = 10_000_000)]
    scale: usize,
    /// The `scale` scenario on PostgreSQL only (with `--database-url`), not on SQLite.
    #[arg(long)]
    postgres_only: bool,
    /// Children of the parent the `cascade` scenario cancels.
    #[arg(long, default_value_t = 10_000)]
    children: usize,
    /// Operations scheduled for later in the `scheduled` scenario.
    #[arg(long, default_value_t = 100_000)]
    scheduled: usize,
    /// How often the `soak` scenario prints a row, in seconds (its length is `--seconds`).
    #[arg(long, default_value_t = 60)]
    interval: u64,
    /// The PostgreSQL database for the `postgres` scenario; it runs in a schema of its own,
    /// dropped at the end.
    #[arg(long, env = "LONGRUN_TEST_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Scenario {
    All,
    Get,
    GrpcGet,
    Submit,
    /// Batches of 1,000 submits from 8 clients, beside plain submit on the same server.
    BatchSubmit,
    Cancel,
    List,
    Rss,
    CancelRunning,
    CancelStream,
    CancelBuiltin,
    Throughput,
    /// Fair leasing across projects (docs/projects.md#fair-leasing): starvation and cost; not part
    /// of `all`.
    Fairness,
    Postgres,
    /// Mixed load for `--seconds` (600 for the ten-minute figure), a report row every
    /// `--interval`; not part of `all`.
    Soak,
    /// `--watchers` watch streams; `--rounds` changes, each timed to every watcher.
    Watch,
    /// `--schedules` schedules, then the server idle for `--seconds`: its CPU and memory;
    /// not part of `all`.
    Schedules,
    /// `--scheduled` operations due across one minute: their start lag; and the drain of
    /// `--drain` operations with `--scheduled` waiting against none; not part of `all`.
    Scheduled,
    /// Three servers sharing a PostgreSQL store: `--rounds` (at most 50) pauses of a queue
    /// that workers on each drain, timed until in effect; not part of `all`.
    Pause,
    /// `--rounds` (at most 20) cancels of a parent with `--children` PENDING children, each
    /// timed until the parent is CANCELLED; on SQLite, and on PostgreSQL too with
    /// `--database-url`; not part of `all`.
    Cascade,
    /// `--scale` operations in one project (docs/operations.md#what-a-page-costs): gets,
    /// list pages and filters, submit, cancel and lease beside an empty store, memory, and
    /// submit while a million expire; on SQLite, and on PostgreSQL too with
    /// `--database-url`; not part of `all`.
    Scale,
}

impl Scenario {
    fn includes(self, any_of: &[Scenario]) -> bool {
        self == Scenario::All || any_of.contains(&self)
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(summary) => {
            summary.print();
            if summary.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<Summary> {
    anyhow::ensure!(
        args.seconds >= 1 && args.concurrency >= 1 && args.list_clients >= 1,
        "--seconds, --concurrency and --list-clients must be at least 1"
    );
    anyhow::ensure!(
        args.operations >= 1 && args.rounds >= 1 && args.drain >= 1 && args.scheduled >= 1,
        "--operations, --rounds, --drain and --scheduled must be at least 1"
    );
    let bin = match &args.server_bin {
        Some(bin) => bin.clone(),
        None => std::env::current_exe()?.with_file_name("longrun"),
    };
    anyhow::ensure!(
        bin.is_file(),
        "no server binary at {}: build it (cargo build --release -p longrun-cli) or pass \
         --server-bin",
        bin.display()
    );
    let runtime = tokio::runtime::Runtime::new().context("cannot start the runtime")?;
    let duration = Duration::from_secs(args.seconds);
    let mut summary = Summary::default();

    let basic = [
        Scenario::Get,
        Scenario::GrpcGet,
        Scenario::Submit,
        Scenario::BatchSubmit,
        Scenario::Cancel,
    ];
    if args.scenario.includes(&basic) {
        let server = start(&bin, server::data_dir()?, &[])?;
        let setup = Setup::new(&[&server], args.concurrency, duration);
        runtime.block_on(async {
            let mut plain = None;
            if args
                .scenario
                .includes(&[Scenario::Submit, Scenario::BatchSubmit])
            {
                plain = Some(scenarios::submit(&setup, &mut summary).await?);
            }
            if args.scenario.includes(&[Scenario::BatchSubmit]) {
                scenarios::batch_submit(&setup, plain, &mut summary).await?;
            }
            if args.scenario.includes(&[Scenario::Get]) {
                scenarios::get(&setup, &mut summary).await?;
            }
            if args.scenario.includes(&[Scenario::GrpcGet]) {
                scenarios::grpc_get(&setup, &mut summary).await?;
            }
            if args.scenario.includes(&[Scenario::Cancel]) {
                scenarios::cancel(&setup, &mut summary).await?;
            }
            anyhow::Ok(())
        })?;
        stop(server, &mut summary);
    }

    let executors = [
        Scenario::CancelRunning,
        Scenario::CancelStream,
        Scenario::CancelBuiltin,
        Scenario::Throughput,
    ];
    if args.scenario.includes(&executors) {
        let server = start(&bin, server::data_dir()?, &[])?;
        let setup = Setup::new(&[&server], args.concurrency, duration);
        runtime.block_on(async {
            if args.scenario.includes(&[Scenario::CancelRunning]) {
                workers::cancel_running(&setup, args.rounds, false, &mut summary).await?;
            }
            if args.scenario.includes(&[Scenario::CancelStream]) {
                workers::cancel_running(&setup, args.rounds, true, &mut summary).await?;
            }
            if args.scenario.includes(&[Scenario::CancelBuiltin]) {
                workers::cancel_builtin(&setup, args.rounds, &mut summary).await?;
            }
            if args.scenario.includes(&[Scenario::Throughput]) {
                workers::throughput(&setup, args.drain, &mut summary).await?;
            }
            anyhow::Ok(())
        })?;
        stop(server, &mut summary);
    }

    if args.scenario.includes(&[Scenario::List, Scenario::Rss]) {
        let dir = server::data_dir()?;
        println!(
            "seeding {} operations into {}",
            args.operations,
            dir.path().display()
        );
        runtime.block_on(listing::seed(dir.path(), args.operations))?;
        let server = start(&bin, dir, &[])?;
        let setup = Setup::new(&[&server], args.list_clients, duration);
        runtime.block_on(listing::list(&setup, args.operations, &mut summary))?;
        stop(server, &mut summary);
    }

    if args.scenario.includes(&[Scenario::Watch]) {
        let server = start(&bin, server::data_dir()?, &[])?;
        let setup = Setup::new(&[&server], args.concurrency, duration);
        let rounds = args.rounds.min(50);
        runtime.block_on(watch::watch(&setup, args.watchers, rounds, &mut summary))?;
        stop(server, &mut summary);
    }

    if args.scenario == Scenario::Fairness {
        let server = start(&bin, server::data_dir()?, &[])?;
        let setup = Setup::new(&[&server], args.concurrency, duration);
        runtime.block_on(async {
            fairness::starvation(&setup, 10_000, &mut summary).await?;
            fairness::cost(&setup, 5_000, &mut summary).await
        })?;
        stop(server, &mut summary);
    }

    if args.scenario == Scenario::Schedules {
        let server = start(&bin, server::data_dir()?, &[])?;
        let setup = Setup::new(&[&server], args.concurrency, duration);
        runtime.block_on(schedules::idle(&setup, args.schedules, &mut summary))?;
        stop(server, &mut summary);
    }

    if args.scenario == Scenario::Scheduled {
        let server = start(&bin, server::data_dir()?, &[])?;
        let setup = Setup::new(&[&server], args.concurrency, duration);
        runtime.block_on(scheduled::start_lag(&setup, args.scheduled, &mut summary))?;
        stop(server, &mut summary);
        let empty = start(&bin, server::data_dir()?, &[])?;
        let setup = Setup::new(&[&empty], args.concurrency, duration);
        let alone = runtime.block_on(workers::drain(&setup, args.drain, &mut summary))?;
        stop(empty, &mut summary);
        let waiting = start(&bin, server::data_dir()?, &[])?;
        let setup = Setup::new(&[&waiting], args.concurrency, duration);
        runtime.block_on(scheduled::waiting_throughput(
            &setup,
            alone,
            args.scheduled,
            args.drain,
            &mut summary,
        ))?;
        stop(waiting, &mut summary);
    }

    if args.scenario == Scenario::Cascade {
        let server = start(&bin, server::data_dir()?, &[])?;
        let setup = Setup::new(&[&server], args.concurrency, duration);
        runtime.block_on(cascade::cascade(
            &setup,
            "SQLite",
            args.children,
            args.rounds,
            CASCADE_SQLITE_TARGET_MS,
            &mut summary,
        ))?;
        stop(server, &mut summary);
    }

    if args.scenario == Scenario::Soak {
        let top = format!("retention = \"{}\"", soak::RETENTION);
        let server = Server::start_with(&bin, server::data_dir()?, &[], &top)?;
        println!(
            "server {} at {} (pid {})",
            bin.display(),
            server.base(),
            server.pid()
        );
        let setup = Setup::new(&[&server], args.concurrency, duration);
        let interval = Duration::from_secs(args.interval.max(1));
        runtime.block_on(soak::soak(&setup, duration, interval, &mut summary))?;
        stop(server, &mut summary);
    }

    if args.scenario == Scenario::Scale && !args.postgres_only {
        let mut seeded = server::data_dir()?;
        let path = seeded.path().to_path_buf();
        let seeding = scale::Seeding::Sqlite(&path);
        scale_on(
            &bin,
            "SQLite",
            &[],
            seeding,
            args,
            &runtime,
            &mut summary,
            || {
                let fresh = server::data_dir()?;
                Ok(std::mem::replace(&mut seeded, fresh))
            },
        )?;
    }

    let needs_database = matches!(args.scenario, Scenario::Postgres | Scenario::Pause);
    let optional_database = matches!(args.scenario, Scenario::Cascade | Scenario::Scale);
    if needs_database || (optional_database && args.database_url.is_some()) {
        let url = args.database_url.as_deref().context(
            "the postgres and pause scenarios need a database: pass --database-url or set \
             LONGRUN_TEST_DATABASE_URL",
        )?;
        // A schema of its own (replacing a leftover of the same name), dropped at the end.
        let name = format!("longrun_bench_{}", std::process::id());
        let schema = runtime
            .block_on(Schema::create_in(url, &name))
            .with_context(|| format!("cannot create schema {name}"))?;
        println!("PostgreSQL schema {}", schema.name());
        let measured = if args.scenario == Scenario::Pause {
            pause_on_postgres(&bin, schema.url(), args, &runtime, &mut summary)
        } else if args.scenario == Scenario::Cascade {
            cascade_on_postgres(&bin, schema.url(), args, &runtime, &mut summary)
        } else if args.scenario == Scenario::Scale {
            let url = schema.url().to_string();
            let store = ["--store", "postgres", "--database-url", url.as_str()];
            let seeding = scale::Seeding::Postgres(&url);
            // The empty store's run leaves its operations behind: the schema is made anew
            // before the seeding.
            let mut emptied = false;
            scale_on(
                &bin,
                "PostgreSQL",
                &store,
                seeding,
                args,
                &runtime,
                &mut summary,
                || {
                    if !emptied {
                        emptied = true;
                        let name = schema.name();
                        runtime.block_on(schema.admin().batch_execute(&format!(
                            "DROP SCHEMA {name} CASCADE; CREATE SCHEMA {name}"
                        )))?;
                    }
                    server::data_dir()
                },
            )
        } else {
            on_postgres(&bin, schema.url(), args, &runtime, &mut summary)
        };
        let dropped = runtime.block_on(schema.remove());
        measured?;
        dropped.with_context(|| format!("cannot drop schema {name}"))?;
    }
    Ok(summary)
}

/// Starts two servers on the PostgreSQL store at `url` and measures submit spread over both,
/// cancel from one to a worker on the other, and a drain by workers on both.
fn on_postgres(
    bin: &Path,
    url: &str,
    args: &Args,
    runtime: &tokio::runtime::Runtime,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let store = ["--store", "postgres", "--database-url", url];
    let a = start(bin, server::data_dir()?, &store)?;
    let b = start(bin, server::data_dir()?, &store)?;
    let setup = Setup::new(
        &[&a, &b],
        args.concurrency,
        Duration::from_secs(args.seconds),
    );
    runtime.block_on(async {
        let plain = scenarios::submit(&setup, summary).await?;
        scenarios::batch_submit(&setup, Some(plain), summary).await?;
        workers::cancel_running(&setup, args.rounds, false, summary).await?;
        workers::throughput(&setup, args.drain, summary).await
    })?;
    stop(a, summary);
    stop(b, summary);
    Ok(())
}

/// The `scale` scenario on one store: submit, cancel and lease on an empty store, then
/// `--scale` operations seeded (`seeded_dir` gives the data directory of the seeded
/// server, called after the empty store's run), the reads and the calls again beside the
/// empty store's, and the expiry of a million at a retention that puts them past it.
#[allow(clippy::too_many_arguments)]
fn scale_on(
    bin: &Path,
    label: &str,
    store: &[&str],
    seeding: scale::Seeding<'_>,
    args: &Args,
    runtime: &tokio::runtime::Runtime,
    summary: &mut Summary,
    mut seeded_dir: impl FnMut() -> anyhow::Result<tempfile::TempDir>,
) -> anyhow::Result<()> {
    let duration = Duration::from_secs(args.seconds);
    let empty = start(bin, server::data_dir()?, store)?;
    let setup = Setup::new(&[&empty], args.list_clients, duration);
    let alone = runtime.block_on(scale::core(&setup, &format!("{label}, empty"), true))?;
    stop(empty, summary);
    let dir = seeded_dir()?;
    println!("{label}: seeding {} operations", args.scale);
    let base = runtime.block_on(scale::seed(seeding, args.scale))?;
    println!(
        "{label}: data directory {:.0} MB",
        server::directory_mb(dir.path())
    );
    let server = start(bin, dir, store)?;
    let setup = Setup::new(&[&server], args.list_clients, duration);
    let at_scale = runtime.block_on(async {
        scale::reads(&setup, label, args.scale, summary).await?;
        scale::core(&setup, &format!("{label}, {} stored", args.scale), false).await
    })?;
    scale::compare(label, args.scale, at_scale, alone, summary);
    let expiring = scale::expiring(args.scale);
    let retention = scale::retention_expiring(base, expiring);
    let server = server.restart(bin, store, &format!("retention = \"{retention}s\""))?;
    println!(
        "{label}: restarted with retention {retention} s (pid {})",
        server.pid()
    );
    let setup = Setup::new(&[&server], args.list_clients, duration);
    runtime.block_on(scale::expiry(
        &setup,
        label,
        expiring,
        at_scale.submit,
        summary,
    ))?;
    stop(server, summary);
    Ok(())
}

/// The cascade's targets (docs/operations.md#parents-and-children), p99 in ms.
const CASCADE_SQLITE_TARGET_MS: f64 = 1000.0;
const CASCADE_POSTGRES_TARGET_MS: f64 = 3000.0;

/// Starts a server on the PostgreSQL store at `url` and times cascades on it.
fn cascade_on_postgres(
    bin: &Path,
    url: &str,
    args: &Args,
    runtime: &tokio::runtime::Runtime,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let store = ["--store", "postgres", "--database-url", url];
    let server = start(bin, server::data_dir()?, &store)?;
    let setup = Setup::new(
        &[&server],
        args.concurrency,
        Duration::from_secs(args.seconds),
    );
    runtime.block_on(cascade::cascade(
        &setup,
        "PostgreSQL",
        args.children,
        args.rounds,
        CASCADE_POSTGRES_TARGET_MS,
        summary,
    ))?;
    stop(server, summary);
    Ok(())
}

/// Starts three servers on the PostgreSQL store at `url` and times pauses across them.
fn pause_on_postgres(
    bin: &Path,
    url: &str,
    args: &Args,
    runtime: &tokio::runtime::Runtime,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let store = ["--store", "postgres", "--database-url", url];
    let servers = (0..3)
        .map(|_| start(bin, server::data_dir()?, &store))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let setup = Setup::new(
        &servers.iter().collect::<Vec<_>>(),
        args.concurrency,
        Duration::from_secs(args.seconds),
    );
    runtime.block_on(pause::pause(&setup, args.rounds, summary))?;
    for server in servers {
        stop(server, summary);
    }
    Ok(())
}

fn start(bin: &Path, dir: tempfile::TempDir, extra: &[&str]) -> anyhow::Result<Server> {
    let server = Server::start(bin, dir, extra)?;
    println!(
        "server {} at {} (pid {})",
        bin.display(),
        server.base(),
        server.pid()
    );
    Ok(server)
}

fn stop(server: Server, summary: &mut Summary) {
    match server.stop() {
        Ok(took) => println!("server stopped in {} ms", took.as_millis()),
        Err(e) => summary.problem(format!("{e:#}")),
    }
}
