//! The figures measured on a server holding many operations: list pages and the server's
//! memory. The operations are written straight into the data directory before the server
//! starts.

use crate::load;
use crate::procfs;
use crate::scenarios::Setup;
use crate::server;
use crate::summary::{Summary, Target};
use longrun_store_sqlite::SqliteStore;
use longrun_types::operation::{Outcome, Status};
use longrun_types::{Code, Name, Operation, Project, State, Timestamp};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The project that holds the seeded operations.
pub const PROJECT: &str = "bench-list";

const PAGE_SIZE: u32 = 500;

/// Operations written per transaction while seeding.
const SEED_CHUNK: usize = 50_000;

/// Progress is printed every this many seeded operations.
const SEED_REPORT: usize = 200_000;

/// Writes `count` operations of [`PROJECT`] into the database under `dir`: one a
/// millisecond, mostly done, some failed, some still queued.
pub async fn seed(dir: &Path, count: usize) -> anyhow::Result<()> {
    let project = Project::parse(PROJECT).map_err(anyhow::Error::msg)?;
    let store = SqliteStore::open(&dir.join(longrun_server::DATABASE_FILE))?;
    // All in the past, well within the retention.
    let base = Timestamp::now().millis() - count as i64 - 3_600_000;
    let started = Instant::now();
    let mut done = 0;
    while done < count {
        let end = (done + SEED_CHUNK).min(count);
        let operations = (done..end)
            .map(|i| seeded(&project, i, base))
            .collect::<anyhow::Result<Vec<_>>>()?;
        store.bulk_load(operations).await?;
        let reported = done / SEED_REPORT != end / SEED_REPORT || end == count;
        done = end;
        if reported {
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "  seeded {done} operations in {seconds:.1} s ({:.0} operations/s)",
                done as f64 / seconds
            );
        }
    }
    drop(store);
    println!(
        "seeded {count} operations in {:.1} s; database {:.0} MB",
        started.elapsed().as_secs_f64(),
        server::directory_mb(dir)
    );
    Ok(())
}

fn seeded(project: &Project, i: usize, base: i64) -> anyhow::Result<Operation> {
    let name = Name::new(project, &format!("export-{i:08}")).map_err(anyhow::Error::msg)?;
    let created = Timestamp(base + i as i64);
    let mut op = Operation::new(name, "EXPORT_IMAGE".into(), created);
    op.description = format!("Export image tile {i}");
    op.destination_uris = vec![format!("gs://bench-bucket/tiles/{i}.tif")];
    let (state, outcome) = match i % 10 {
        0 => (State::Pending, None),
        1 => (
            State::Failed,
            Some(Outcome::Error(Status::new(Code::Internal, "worker lost"))),
        ),
        _ => (
            State::Succeeded,
            Some(Outcome::Response(serde_json::json!({
                "@type": "type.googleapis.com/google.protobuf.Empty"
            }))),
        ),
    };
    if state != State::Pending {
        op.start_time = Some(created.plus_millis(1_000));
        op.progress = 1.0;
        op.move_to(state, outcome, created.plus_millis(60_000));
    }
    Ok(op)
}

/// Walks the whole list once, then measures walks from the start and reads of deep pages
/// with `list_clients` clients, then reads the server's memory.
pub async fn list(setup: &Setup, operations: usize, summary: &mut Summary) -> anyhow::Result<()> {
    let memory = procfs::memory(setup.servers[0].pid)?;
    println!(
        "server memory with {operations} stored operations, idle: RSS {:.0} MB, peak {:.0} MB",
        memory.rss_mb, memory.peak_mb
    );

    // One full walk: checks every operation is listed once and keeps every page token.
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(AtomicUsize::new(0));
    let walk = load::run(1, Duration::from_secs(3600), &setup.pids(), |_, mut rec| {
        let (client, tokens, seen) = (setup.client().clone(), tokens.clone(), seen.clone());
        async move {
            let mut token = String::new();
            while rec.running() {
                let Some(page) = rec.time(client.list(PROJECT, "", PAGE_SIZE, &token)).await else {
                    break;
                };
                let listed = page["operations"].as_array().map_or(0, Vec::len);
                seen.fetch_add(listed, Ordering::Relaxed);
                match page["nextPageToken"].as_str() {
                    Some(next) => token = next.to_string(),
                    None => break,
                }
                tokens.lock().expect("token lock").push(token.clone());
            }
            rec
        }
    })
    .await?;
    println!("list, full walk: {}", walk.line("pages"));
    summary.check("list, full walk", &walk);
    let seen = seen.load(Ordering::Relaxed);
    if seen != operations {
        summary.problem(format!(
            "list: the full walk listed {seen} operations, not {operations}"
        ));
    }

    let walks = load::run(
        setup.clients,
        setup.duration,
        &setup.pids(),
        |_, mut rec| {
            let client = setup.client().clone();
            async move {
                let mut token = String::new();
                while rec.running() {
                    let page = rec.time(client.list(PROJECT, "", PAGE_SIZE, &token)).await;
                    // Back to the first page at the end of the list or after a failure.
                    token = page
                        .as_ref()
                        .and_then(|p| p["nextPageToken"].as_str())
                        .unwrap_or_default()
                        .to_string();
                }
                rec
            }
        },
    )
    .await?;
    println!("list, walks from the start: {}", walks.line("pages"));
    summary.check("list, walks from the start", &walks);
    summary.figure(
        &format!("list from the start ({} clients)", setup.clients),
        walks.rate(),
        "pages/s",
        Target::AtLeast(200.0),
    );

    // Deep pages: random pages from the second half of the list.
    let tokens: Vec<String> = std::mem::take(&mut *tokens.lock().expect("token lock"));
    let deep = Arc::new(tokens[tokens.len() / 2..].to_vec());
    if deep.is_empty() {
        println!("list, deep pages: skipped, the list has one page");
    } else {
        let report = load::run(
            setup.clients,
            setup.duration,
            &setup.pids(),
            |task, mut rec| {
                let (client, deep) = (setup.client().clone(), deep.clone());
                async move {
                    let mut i = 0u64;
                    while rec.running() {
                        let pick = load::mix(((task as u64) << 32) | i) as usize % deep.len();
                        rec.time(client.list(PROJECT, "", PAGE_SIZE, &deep[pick]))
                            .await;
                        i += 1;
                    }
                    rec
                }
            },
        )
        .await?;
        println!("list, deep pages: {}", report.line("pages"));
        summary.check("list, deep pages", &report);
        summary.figure(
            &format!("list deep pages ({} clients)", setup.clients),
            report.rate(),
            "pages/s",
            Target::AtLeast(200.0),
        );
    }

    queue_get(setup, operations, summary).await?;

    let memory = procfs::memory(setup.servers[0].pid)?;
    println!(
        "server memory with {operations} stored operations, after the list runs: RSS {:.0} MB, \
         peak {:.0} MB",
        memory.rss_mb, memory.peak_mb
    );
    summary.figure(
        "server RSS after lists",
        memory.rss_mb,
        "MB",
        Target::AtMost(200.0),
    );
    summary.figure(
        "server peak RSS (VmHWM)",
        memory.peak_mb,
        "MB",
        Target::AtMost(200.0),
    );
    Ok(())
}

/// Gets of the seeded operations' queue (docs/queues.md) for `--seconds`: its counts are
/// kept by the store, so a get reads no operations however many are stored. Checks the
/// count (every tenth seeded operation is PENDING) and reports the latency.
async fn queue_get(setup: &Setup, operations: usize, summary: &mut Summary) -> anyhow::Result<()> {
    let path = format!("/v1/projects/{PROJECT}/queues/EXPORT_IMAGE");
    let queue = setup.client().call(http::Method::GET, &path, None).await?;
    let pending = operations.div_ceil(10).to_string();
    if queue["pendingCount"].as_str() != Some(pending.as_str()) {
        summary.problem(format!(
            "queue get: pendingCount {} with {pending} PENDING stored",
            queue["pendingCount"]
        ));
    }
    let report = load::run(
        setup.clients,
        setup.duration,
        &setup.pids(),
        |_, mut rec| {
            let (client, path) = (setup.client().clone(), path.clone());
            async move {
                while rec.running() {
                    rec.time(client.call(http::Method::GET, &path, None)).await;
                }
                rec
            }
        },
    )
    .await?;
    println!(
        "queue get with {operations} stored ({pending} PENDING in the queue): {}",
        report.line("requests")
    );
    summary.check("queue get", &report);
    summary.figure(
        &format!("queue get p99, {operations} stored"),
        report.percentile_ms(99.0),
        "ms",
        Target::AtMost(10.0),
    );
    Ok(())
}
