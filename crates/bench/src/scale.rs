//! The figures of one project holding many operations (docs/operations.md#what-a-page-costs),
//! beside the same calls on an empty store: reads and list pages with and without indexed
//! filters, submit, cancel and lease, the server's memory, and submit while a million
//! operations expire at retention. The operations are written straight into the store
//! before the server starts: SQLite's file, or the PostgreSQL schema the servers use.

use crate::load::{self, Report};
use crate::procfs;
use crate::scenarios::Setup;
use crate::summary::{Summary, Target};
use longrun_store::Operations;
use longrun_types::operation::{Outcome, Status};
use longrun_types::{Code, Name, Operation, Project, State, Timestamp};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The project that holds the seeded operations.
pub const PROJECT: &str = "bench-scale";

/// One seeded operation in this many is of type `RARE`, and another one's description holds
/// the word `needle`: the selective filters (0.005 %).
const RARE_EVERY: usize = 20_000;

/// The type of the seeded operations, and of the queue the lease runs take from (not an
/// export, so the export cap does not stop the leases).
const QUEUED_TYPE: &str = "INGEST_TABLE";

/// Operations written per store transaction while seeding.
const SEED_CHUNK: usize = 20_000;

/// Concurrent seeding transactions on PostgreSQL.
const SEED_TASKS: usize = 4;

/// Operations expired at retention in the expiry figure (when the store holds twice as many).
const EXPIRED: usize = 1_000_000;

/// PENDING operations queued on the empty store for its lease run.
const EMPTY_QUEUE: usize = 20_000;

/// Where the seeded operations go.
pub enum Seeding<'a> {
    Sqlite(&'a Path),
    Postgres(&'a str),
}

/// When the seeded operations were created: operation `i` at `base + i` ms, all well in the
/// past.
fn seed_base(count: usize) -> i64 {
    Timestamp::now().millis() - count as i64 - 3_600_000
}

/// Writes `count` operations of [`PROJECT`] into the store: one a millisecond, 80 %
/// SUCCEEDED, 10 % FAILED, 10 % PENDING ([`QUEUED_TYPE`]); priorities 0 to 999. Returns the
/// creation time of the first.
pub async fn seed(target: Seeding<'_>, count: usize) -> anyhow::Result<i64> {
    let project = Project::parse(PROJECT).map_err(anyhow::Error::msg)?;
    let base = seed_base(count);
    let started = Instant::now();
    let store: Arc<dyn Operations> = match &target {
        Seeding::Sqlite(dir) => Arc::new(longrun_store_sqlite::SqliteStore::open(
            &dir.join(longrun_server::DATABASE_FILE),
        )?),
        Seeding::Postgres(url) => {
            Arc::new(longrun_store_postgres::PostgresStore::connect(url).await?)
        }
    };
    let next = Arc::new(AtomicUsize::new(0));
    let written = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..SEED_TASKS)
        .map(|_| {
            let (store, next, written, project) = (
                store.clone(),
                next.clone(),
                written.clone(),
                project.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let from = next.fetch_add(SEED_CHUNK, Ordering::Relaxed);
                    if from >= count {
                        return anyhow::Ok(());
                    }
                    let to = (from + SEED_CHUNK).min(count);
                    let chunk = (from..to)
                        .map(|i| Ok((seeded(&project, i, base)?, json!({}))))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    store.import(chunk).await?;
                    let total = written.fetch_add(to - from, Ordering::Relaxed) + to - from;
                    if total / 1_000_000 != (total - (to - from)) / 1_000_000 {
                        let seconds = started.elapsed().as_secs_f64();
                        println!(
                            "  seeded {total} operations in {seconds:.0} s ({:.0} operations/s)",
                            total as f64 / seconds
                        );
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    if let Seeding::Postgres(url) = target {
        // What autovacuum does a while after such a load (PostgreSQL 13 and later vacuum
        // after inserts too): the planner's statistics, and the visibility map, without
        // which every index entry a page examines costs a read of its table row.
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        client.batch_execute("VACUUM ANALYZE operations").await?;
    }
    println!(
        "seeded {count} operations in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(base)
}

fn seeded(project: &Project, i: usize, base: i64) -> anyhow::Result<Operation> {
    let name = Name::new(project, &format!("op-{i:09}")).map_err(anyhow::Error::msg)?;
    let created = Timestamp(base + i as i64);
    let op_type = if i.is_multiple_of(RARE_EVERY) {
        "RARE"
    } else {
        QUEUED_TYPE
    };
    let mut op = Operation::new(name, op_type.into(), created);
    op.version = 1;
    op.priority = (i % 1000) as i32;
    op.description = if i % RARE_EVERY == RARE_EVERY / 2 {
        format!("Export the needle tile {i}")
    } else {
        format!("Export image tile {i}")
    };
    op.destination_uris = vec![format!("gs://bench-bucket/tiles/{i}.tif")];
    let (state, outcome) = match i % 10 {
        0 => (State::Pending, None),
        1 => (
            State::Failed,
            Some(Outcome::Error(Status::new(Code::Internal, "worker lost"))),
        ),
        _ => (
            State::Succeeded,
            Some(Outcome::Response(json!({
                "@type": "type.googleapis.com/google.protobuf.Empty"
            }))),
        ),
    };
    if state != State::Pending {
        op.attempt = 1;
        op.start_time = Some(created.plus_millis(1_000));
        op.progress = 1.0;
        op.move_to(state, outcome, created.plus_millis(60_000));
    }
    Ok(op)
}

/// The name of seeded operation `i`.
fn seeded_name(i: usize) -> String {
    format!("projects/{PROJECT}/operations/op-{i:09}")
}

/// p99 of submit, cancel and lease on one server, in ms.
#[derive(Clone, Copy)]
pub struct Core {
    pub submit: f64,
    pub cancel: f64,
    pub lease: f64,
}

/// Submits into [`PROJECT`] for `--seconds`, cancels what was submitted, then leases
/// [`QUEUED_TYPE`] operations one per call for `--seconds` (the store's own PENDING ones; an
/// empty store is given [`EMPTY_QUEUE`] first).
pub async fn core(setup: &Setup, label: &str, empty: bool) -> anyhow::Result<Core> {
    let submitted = Arc::new(std::sync::Mutex::new(Vec::new()));
    let submits = load::run(
        setup.clients,
        setup.duration,
        &setup.pids(),
        |_, mut rec| {
            let (client, submitted) = (setup.client().clone(), submitted.clone());
            async move {
                let body = json!({"type": "BENCH_SCALE", "description": "a submit at scale"});
                while rec.running() {
                    if let Some(op) = rec.time(client.submit(PROJECT, &body)).await
                        && let Some(name) = op["name"].as_str()
                    {
                        submitted.lock().expect("lock").push(name.to_string());
                    }
                }
                rec
            }
        },
    )
    .await?;
    println!("{label}: submit: {}", submits.line("requests"));
    let names: Arc<Vec<Name>> = Arc::new(
        std::mem::take(&mut *submitted.lock().expect("lock"))
            .iter()
            .filter_map(|n| Name::parse(n).ok())
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let cancels = load::run(
        setup.clients,
        setup.duration,
        &setup.pids(),
        |_, mut rec| {
            let (client, names, next) = (setup.client().clone(), names.clone(), next.clone());
            async move {
                while rec.running() {
                    let Some(name) = names.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    rec.time(client.cancel(name)).await;
                }
                rec
            }
        },
    )
    .await?;
    println!("{label}: cancel PENDING: {}", cancels.line("requests"));
    if empty {
        let batch: Vec<_> = (0..1000).map(|_| json!({"type": QUEUED_TYPE})).collect();
        let path = format!("/v1/projects/{PROJECT}/operations:batchSubmit");
        for _ in 0..EMPTY_QUEUE / 1000 {
            setup
                .client()
                .call(http::Method::POST, &path, Some(&json!({"requests": batch})))
                .await?;
        }
    }
    let leases = load::run(
        setup.clients,
        setup.duration,
        &setup.pids(),
        |task, mut rec| {
            let client = setup.client().clone();
            async move {
                let path = format!("/v1/workers/scale-{task}:lease");
                let body = json!({"types": [QUEUED_TYPE], "maxOperations": 1, "waitTimeout": "0s"});
                while rec.running() {
                    rec.time(client.call(http::Method::POST, &path, Some(&body)))
                        .await;
                }
                rec
            }
        },
    )
    .await?;
    println!("{label}: lease: {}", leases.line("requests"));
    Ok(Core {
        submit: submits.percentile_ms(99.0),
        cancel: cancels.percentile_ms(99.0),
        lease: leases.percentile_ms(99.0),
    })
}

/// Times `call` from `clients` clients for `--seconds`.
async fn timed<F, Fut>(setup: &Setup, clients: usize, call: F) -> anyhow::Result<Report>
where
    F: Fn(longrun_client::Client, u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<serde_json::Value, longrun_client::Error>> + Send,
{
    load::run(clients, setup.duration, &setup.pids(), |task, mut rec| {
        let (client, call) = (setup.client().clone(), call.clone());
        async move {
            let mut i = 0u64;
            while rec.running() {
                rec.time(call(client.clone(), load::mix(((task as u64) << 32) | i)))
                    .await;
                i += 1;
            }
            rec
        }
    })
    .await
}

/// Gets, first pages and filtered pages on the seeded server, with their targets.
pub async fn reads(
    setup: &Setup,
    store: &str,
    count: usize,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let memory = procfs::memory(setup.servers[0].pid)?;
    println!("{store}, {count} stored, idle: RSS {:.0} MB", memory.rss_mb);
    let gets = timed(setup, setup.clients, move |client, r| async move {
        let name = Name::parse(&seeded_name(r as usize % count)).expect("a seeded name");
        client.get(&name).await
    })
    .await?;
    println!("{store}: get: {}", gets.line("requests"));
    summary.check("scale get", &gets);
    summary.figure(
        &format!("{store} get p99, {count} stored"),
        gets.percentile_ms(99.0),
        "ms",
        Target::AtMost(2.0),
    );
    // Pages are timed one at a time: what one caller waits for.
    let first = timed(setup, 1, |client, _| async move {
        client.list(PROJECT, "", 100, "").await
    })
    .await?;
    println!("{store}: first page: {}", first.line("pages"));
    summary.figure(
        &format!("{store} first page p99, {count} stored"),
        first.percentile_ms(99.0),
        "ms",
        Target::AtMost(10.0),
    );
    // Every page of each filter, over and over; the selective ones are answered by an
    // index, the others are bounded by the scan budget.
    let filters: [(&str, f64); 8] = [
        ("metadata.type = \"RARE\"", 50.0),
        ("metadata.description:needle", 50.0),
        ("metadata.type = \"RARE\" AND metadata.priority < 500", 50.0),
        ("metadata.state = \"FAILED\"", 300.0),
        ("done = false", 300.0),
        ("metadata.priority = 7", 300.0),
        ("metadata.attempt = 99", 300.0),
        ("metadata.description = \"*needle*\"", 300.0),
    ];
    for (filter, target) in filters {
        let pages = load::run(1, setup.duration, &setup.pids(), |_, mut rec| {
            let client = setup.client().clone();
            async move {
                let mut token = String::new();
                while rec.running() {
                    let page = rec.time(client.list(PROJECT, filter, 100, &token)).await;
                    token = page
                        .as_ref()
                        .and_then(|p| p["nextPageToken"].as_str())
                        .unwrap_or_default()
                        .to_string();
                }
                rec
            }
        })
        .await?;
        println!("{store}: `{filter}` pages: {}", pages.line("pages"));
        summary.check(filter, &pages);
        summary.figure(
            &format!("{store} `{filter}` page p99, {count} stored"),
            pages.percentile_ms(99.0),
            "ms",
            Target::AtMost(target),
        );
    }
    let memory = procfs::memory(setup.servers[0].pid)?;
    println!(
        "{store}, {count} stored, after the reads: RSS {:.0} MB, peak {:.0} MB",
        memory.rss_mb, memory.peak_mb
    );
    summary.figure(
        &format!("{store} server RSS, {count} stored"),
        memory.rss_mb,
        "MB",
        Target::AtMost(256.0),
    );
    Ok(())
}

/// Each of submit, cancel and lease p99 against its p99 on the empty store.
pub fn compare(store: &str, count: usize, full: Core, empty: Core, summary: &mut Summary) {
    for (call, at_scale, alone) in [
        ("submit", full.submit, empty.submit),
        ("cancel", full.cancel, empty.cancel),
        ("lease", full.lease, empty.lease),
    ] {
        println!(
            "{store}: {call} p99 {at_scale:.2} ms with {count} stored, {alone:.2} ms on an empty store"
        );
        summary.figure(
            &format!("{store} {call} p99 with {count} stored ÷ empty store"),
            at_scale / alone,
            "×",
            Target::AtMost(1.25),
        );
    }
}

/// The retention (in seconds) under which the first `expired` seeded operations (by
/// creation) are past it now: they ended 60 s after they were created at `base + i` ms.
pub fn retention_expiring(base: i64, expired: usize) -> u64 {
    let now = Timestamp::now().millis();
    ((now - base - 60_000 - expired as i64) / 1000).max(1) as u64
}

/// How many seeded operations the expiry figure removes, of `count`.
pub fn expiring(count: usize) -> usize {
    // 9 in 10 are done; the rest stay PENDING.
    (EXPIRED * 10 / 9).min(count / 2)
}

/// `longrun_operations_expired_total` of the first server's `/metrics`.
async fn removed(setup: &Setup) -> anyhow::Result<usize> {
    let response = setup
        .client()
        .send(http::Method::GET, "/metrics", None)
        .await?;
    let text = String::from_utf8_lossy(&response.body);
    let value = text
        .lines()
        .find_map(|line| line.strip_prefix("longrun_operations_expired_total "))
        .ok_or_else(|| anyhow::anyhow!("no longrun_operations_expired_total in /metrics"))?;
    Ok(value.trim().parse::<f64>()? as usize)
}

/// Submits while the server (just started with a retention that puts the first `expiring`
/// seeded operations past it) expires them, in windows of `--seconds` until the last of
/// them is gone; the worst window's submit p99 against `steady`.
pub async fn expiry(
    setup: &Setup,
    store: &str,
    expiring: usize,
    steady: f64,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let expired = expiring - expiring.div_ceil(10);
    let started = Instant::now();
    let mut worst = 0.0f64;
    let mut windows = 0;
    let body = json!({"type": "BENCH_SCALE", "description": "a submit during expiry"});
    loop {
        // A get of an operation past retention is 404 before it is removed: the server's
        // count of removed operations says when the expiry is done.
        let removed = removed(setup).await?;
        if removed >= expired || started.elapsed() > Duration::from_secs(1800) {
            anyhow::ensure!(
                removed >= expired,
                "{store}: {removed} of {expired} expired within 30 minutes"
            );
            break;
        }
        let report = timed(setup, setup.clients, {
            let body = body.clone();
            move |client, _| {
                let body = body.clone();
                async move { client.submit(PROJECT, &body).await }
            }
        })
        .await?;
        println!("{store}: submit during expiry: {}", report.line("requests"));
        summary.check("submit during expiry", &report);
        worst = worst.max(report.percentile_ms(99.0));
        windows += 1;
    }
    println!(
        "{store}: {expired} operations expired in {:.0} s; submit p99 at worst {worst:.2} ms \
         ({windows} windows), {steady:.2} ms before",
        started.elapsed().as_secs_f64()
    );
    if windows > 0 {
        summary.figure(
            &format!("{store} submit p99 while {expired} expire ÷ before"),
            worst / steady,
            "×",
            Target::AtMost(2.0),
        );
    }
    Ok(())
}
