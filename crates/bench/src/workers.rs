//! The figures measured with SDK workers in this process, leasing from the servers over
//! HTTP: how fast a cancel reaches a running operation's worker (on another server, when
//! there are several) and ends it, and how many no-op operations the workers drain per
//! second. Also how fast a cancel ends an operation run by the server's built-in `simulate`
//! executor.

use crate::procfs;
use crate::scenarios::Setup;
use crate::server::SIMULATE_TYPE;
use crate::summary::{Summary, Target};
use anyhow::Context as _;
use longrun_client::Client;
use longrun_types::{Code, Name, Project};
use longrun_worker::{GrpcBackend, HttpBackend, Status, Worker};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// The projects of cancel-running over REST and over the worker stream: one server runs
/// both scenarios, so each has its own ids.
const CANCEL_PROJECT: &str = "bench-cancel-running";
const CANCEL_STREAM_PROJECT: &str = "bench-cancel-stream";
const CANCEL_TYPE: &str = "BENCH_CANCEL";
/// The message the cancel handler acknowledges with: an operation that ends with another
/// was not ended by the worker (the cancel grace ran out, say).
const CANCEL_MESSAGE: &str = "cancelled";
/// Slots of the cancel worker: only one operation runs at a time, the rest keep a lease
/// request waiting as an idle worker would.
const CANCEL_SLOTS: usize = 8;
/// Time given to the worker, once its operation is RUNNING, to have its waiting heartbeat in
/// place before the cancel.
const HEARTBEAT_SETTLE: Duration = Duration::from_millis(50);
/// Targets for a cancel reaching the worker, in ms: through the server itself, and from
/// another server sharing the store (through the store's notification).
const NOTIFIED_TARGET_MS: f64 = 10.0;
const NOTIFIED_ACROSS_TARGET_MS: f64 = 20.0;
/// … and pushed on the gRPC worker stream.
const NOTIFIED_STREAM_TARGET_MS: f64 = 5.0;

const BUILTIN_PROJECT: &str = "bench-cancel-builtin";
/// The message the `simulate` executor acknowledges a cancel with: an operation that ends
/// with another was not ended by the executor.
const SIMULATE_MESSAGE: &str = "Simulation cancelled.";

pub const THROUGHPUT_PROJECT: &str = "bench-throughput";
pub const NOOP_TYPE: &str = "BENCH_NOOP";
/// Workers and slots of each for the drain, spread evenly over the servers. Of 1×64, 2×32,
/// 4×16, 8×8, 16×4 and 8×16 on two cores and one server, 4×16 drained fastest (about 11,000
/// operations/s, the others 9,000 to 10,500), if by little: the server's writes, not the
/// workers, set the pace.
const NOOP_WORKERS: usize = 4;
const NOOP_SLOTS: usize = 16;
const DRAIN_LEASE_POLL: Duration = Duration::from_millis(100);

pub const PAGE_SIZE: u32 = 500;

/// How long an operation may take to reach a state the scenario waits for.
const STATE_TIMEOUT: Duration = Duration::from_secs(10);

/// Cancels RUNNING operations, one at a time, each held by a worker whose handler waits for
/// the cancel: measures when the handler hears of it and when `get` shows CANCELLED. The
/// worker leases from the last server; submits, cancels and reads go through the first.
///
/// Rounds run one after another, so each cancel is timed on an otherwise idle server; a
/// round takes a few writes and the settle time, so 200 rounds take about 10 s. With
/// `stream`, the worker uses the gRPC `Work` stream, on which the server pushes the cancel;
/// otherwise REST, where a waiting heartbeat returns with it.
pub async fn cancel_running(
    setup: &Setup,
    rounds: usize,
    stream: bool,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let project_id = if stream {
        CANCEL_STREAM_PROJECT
    } else {
        CANCEL_PROJECT
    };
    let project = Project::parse(project_id).map_err(anyhow::Error::msg)?;
    let noticed: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let recorded = noticed.clone();
    let worker = Worker::new("bench-cancel")
        .concurrency(CANCEL_SLOTS)
        .handle(CANCEL_TYPE, move |ctx| {
            let recorded = recorded.clone();
            async move {
                ctx.cancelled().await;
                let now = Instant::now();
                recorded
                    .lock()
                    .expect("notice lock")
                    .insert(ctx.name().as_str().to_string(), now);
                Err(Status::new(Code::Cancelled, CANCEL_MESSAGE))
            }
        });
    let (stop, stopped) = oneshot::channel::<()>();
    let base = setup.servers[setup.servers.len() - 1].client.base();
    let shutdown = async {
        let _ = stopped.await;
    };
    let running = if stream {
        let backend = GrpcBackend::new(base).map_err(|e| anyhow::anyhow!("{e:?}"))?;
        tokio::spawn(worker.run(Arc::new(backend), shutdown))
    } else {
        tokio::spawn(worker.run(Arc::new(HttpBackend::new(base)), shutdown))
    };

    let client = setup.client();
    let mut notified = Vec::with_capacity(rounds);
    let mut visible = Vec::with_capacity(rounds);
    let mut wrong = Vec::new();
    for round in 0..rounds {
        let name = Name::new(&project, &format!("round-{round:05}")).map_err(anyhow::Error::msg)?;
        let body = json!({"type": CANCEL_TYPE, "operationId": name.id(), "description": "bench"});
        client.submit(project_id, &body).await?;
        wait_for_state(client, &name, "RUNNING", Duration::from_millis(1)).await?;
        tokio::time::sleep(HEARTBEAT_SETTLE).await;

        let cancelled_at = Instant::now();
        client.cancel(&name).await?;
        let op = wait_for_state(client, &name, "CANCELLED", Duration::ZERO).await?;
        visible.push(cancelled_at.elapsed());

        let heard = noticed.lock().expect("notice lock").remove(name.as_str());
        match heard {
            Some(at) => notified.push(at.duration_since(cancelled_at)),
            None => wrong.push(format!("{name}: CANCELLED before its handler heard")),
        }
        if op["error"]["message"] != CANCEL_MESSAGE {
            wrong.push(format!("{name} ended with {}", op["error"]));
        }
    }
    let _ = stop.send(());
    running.await?;

    if !wrong.is_empty() {
        summary.problem(format!(
            "cancel running: {} of {rounds} operations were not ended by their worker (e.g. {})",
            wrong.len(),
            wrong[0]
        ));
    }
    let notified = Latencies::new(notified);
    let visible = Latencies::new(visible);
    let (across, notified_target) = match (setup.servers.len(), stream) {
        (1, true) => (" over the worker stream", NOTIFIED_STREAM_TARGET_MS),
        (1, false) => ("", NOTIFIED_TARGET_MS),
        (_, true) => (
            " across servers over the worker stream",
            NOTIFIED_ACROSS_TARGET_MS,
        ),
        (_, false) => (" across servers", NOTIFIED_ACROSS_TARGET_MS),
    };
    println!(
        "cancel running{across} ({rounds} rounds): worker notified {}",
        notified.line()
    );
    println!(
        "cancel running{across} ({rounds} rounds): CANCELLED visible through get {}",
        visible.line()
    );
    summary.figure(
        &format!("cancel running{across} → worker notified p99"),
        notified.percentile_ms(99.0),
        "ms",
        Target::AtMost(notified_target),
    );
    summary.figure(
        &format!("cancel running{across} → CANCELLED visible p99"),
        visible.percentile_ms(99.0),
        "ms",
        Target::AtMost(50.0),
    );
    Ok(())
}

/// Cancels RUNNING operations of the built-in `simulate` executor, one at a time, each
/// hanging until cancelled: measures when `get` shows CANCELLED. When the executor hears of
/// the cancel cannot be seen from outside; this is an upper bound of it.
pub async fn cancel_builtin(
    setup: &Setup,
    rounds: usize,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    let project = Project::parse(BUILTIN_PROJECT).map_err(anyhow::Error::msg)?;
    let client = setup.client();
    let mut visible = Vec::with_capacity(rounds);
    let mut wrong = Vec::new();
    for round in 0..rounds {
        let name = Name::new(&project, &format!("round-{round:05}")).map_err(anyhow::Error::msg)?;
        let body = json!({"type": SIMULATE_TYPE, "operationId": name.id(), "description": "bench"});
        client.submit(BUILTIN_PROJECT, &body).await?;
        wait_for_state(client, &name, "RUNNING", Duration::from_millis(1)).await?;
        tokio::time::sleep(HEARTBEAT_SETTLE).await;

        let cancelled_at = Instant::now();
        client.cancel(&name).await?;
        let op = wait_for_state(client, &name, "CANCELLED", Duration::ZERO).await?;
        visible.push(cancelled_at.elapsed());
        if op["error"]["message"] != SIMULATE_MESSAGE {
            wrong.push(format!("{name} ended with {}", op["error"]));
        }
    }

    if !wrong.is_empty() {
        summary.problem(format!(
            "cancel running, built-in: {} of {rounds} operations were not ended by the \
             simulate executor (e.g. {})",
            wrong.len(),
            wrong[0]
        ));
    }
    let visible = Latencies::new(visible);
    println!(
        "cancel running (built-in simulate) → CANCELLED visible through get ({rounds} rounds): {}",
        visible.line()
    );
    // The target is for the executor being notified; this figure includes the write and the
    // reads that show it.
    summary.figure(
        "cancel running, built-in → CANCELLED visible p99 (target: notified)",
        visible.percentile_ms(99.0),
        "ms",
        Target::AtMost(10.0),
    );
    Ok(())
}

/// Reads `name` every `pause` until its state is `state`, and returns it then.
async fn wait_for_state(
    client: &Client,
    name: &Name,
    state: &str,
    pause: Duration,
) -> anyhow::Result<serde_json::Value> {
    let deadline = Instant::now() + STATE_TIMEOUT;
    loop {
        let op = client.get(name).await?;
        if op["metadata"]["state"] == state {
            return Ok(op);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "{name} is still {} after {} s, not {state}",
            op["metadata"]["state"],
            STATE_TIMEOUT.as_secs()
        );
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

/// Durations of one measured step, sorted.
pub struct Latencies(Vec<Duration>);

impl Latencies {
    pub fn new(mut all: Vec<Duration>) -> Latencies {
        all.sort_unstable();
        Latencies(all)
    }

    /// The duration below which `percent` of them fall, in ms.
    pub fn percentile_ms(&self, percent: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let rank = (percent / 100.0 * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1].as_secs_f64() * 1000.0
    }

    pub fn line(&self) -> String {
        format!(
            "p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
            self.percentile_ms(50.0),
            self.percentile_ms(99.0),
            self.percentile_ms(100.0)
        )
    }
}

/// Queues `total` no-op operations, then drains them with SDK workers (lease, run, complete)
/// and checks they all ended SUCCEEDED: the drain figure, against 5,000 operations/s.
pub async fn throughput(setup: &Setup, total: usize, summary: &mut Summary) -> anyhow::Result<()> {
    let rate = drain(setup, total, summary).await?;
    summary.figure(
        &format!("submit→lease→complete drain{}", setup.across()),
        rate,
        "ops/s",
        Target::AtLeast(5_000.0),
    );
    Ok(())
}

/// The drain of [`throughput`] without its figure: queues `total` no-op operations of
/// [`NOOP_TYPE`] in [`THROUGHPUT_PROJECT`], drains them, checks they ended SUCCEEDED (a
/// problem noted otherwise) and returns the drain's rate in operations/s.
pub async fn drain(setup: &Setup, total: usize, summary: &mut Summary) -> anyhow::Result<f64> {
    let started = Instant::now();
    submit_noops(setup, total).await?;
    let submitted = started.elapsed();
    println!(
        "throughput: queued {total} {NOOP_TYPE} operations in {:.1} s ({:.0} ops/s, {} clients)",
        submitted.as_secs_f64(),
        total as f64 / submitted.as_secs_f64(),
        setup.clients
    );

    let handled = Arc::new(AtomicUsize::new(0));
    let (all_ran, ran) = watch::channel(false);
    let all_ran = Arc::new(all_ran);
    // A drain slower than 100 operations/s gives up (and fails the run) rather than hang.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60.max(total as u64 / 100));
    let (server_pids, bench_pid) = (setup.pids(), [std::process::id()]);
    let server_cpu = procfs::cpu_seconds(&server_pids)?;
    let bench_cpu = procfs::cpu_seconds(&bench_pid)?;
    let drain_started = Instant::now();
    let workers: Vec<_> = (0..NOOP_WORKERS)
        .map(|i| {
            let (handled, all_ran) = (handled.clone(), all_ran.clone());
            // A short lease poll: at the end, shutting down waits for the lease requests
            // in flight, which would otherwise add up to a whole poll to the drain time.
            let worker = Worker::new(&format!("bench-noop-{i}"))
                .concurrency(NOOP_SLOTS)
                .lease_poll(DRAIN_LEASE_POLL)
                .handle(NOOP_TYPE, move |_| {
                    if handled.fetch_add(1, Ordering::Relaxed) + 1 == total {
                        let _ = all_ran.send(true);
                    }
                    async { Ok(json!({})) }
                });
            let mut ran = ran.clone();
            // Once the last handler ran, the workers stop leasing and finish completing.
            tokio::spawn(worker.run(
                Arc::new(HttpBackend::new(setup.client_for(i).base())),
                async move {
                    let _ = tokio::time::timeout_at(deadline, ran.wait_for(|r| *r)).await;
                },
            ))
        })
        .collect();
    for worker in workers {
        worker.await?;
    }
    let drain = drain_started.elapsed();
    let cores = |before: f64, pids: &[u32]| -> anyhow::Result<f64> {
        Ok((procfs::cpu_seconds(pids)? - before) / drain.as_secs_f64())
    };
    let (server_cores, bench_cores) = (
        cores(server_cpu, &server_pids)?,
        cores(bench_cpu, &bench_pid)?,
    );
    let handled = handled.load(Ordering::Relaxed);
    anyhow::ensure!(
        handled >= total,
        "throughput: the workers ran only {handled} of {total} operations in {:.0} s",
        drain.as_secs_f64()
    );
    let rate = total as f64 / drain.as_secs_f64();
    println!(
        "throughput: {NOOP_WORKERS} workers × {NOOP_SLOTS} slots{} drained {total} operations \
         in {:.1} s: {rate:.0} ops/s (CPU: servers {server_cores:.2} cores, bench \
         {bench_cores:.2} cores)",
        setup.across(),
        drain.as_secs_f64()
    );
    println!(
        "throughput: end to end, queue then drain: {:.0} ops/s in {:.1} s",
        total as f64 / (submitted + drain).as_secs_f64(),
        (submitted + drain).as_secs_f64()
    );

    let succeeded = count(
        setup.client(),
        THROUGHPUT_PROJECT,
        "metadata.state = SUCCEEDED",
    )
    .await?;
    if handled != total || succeeded != total {
        summary.problem(format!(
            "throughput: of {total} operations, handlers ran {handled} times and {succeeded} \
             ended SUCCEEDED"
        ));
    } else {
        println!("throughput: all {total} operations listed SUCCEEDED");
    }
    Ok(rate)
}

/// Submits `total` no-op operations with the scenario's clients.
async fn submit_noops(setup: &Setup, total: usize) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(0));
    let body = Arc::new(json!({"type": NOOP_TYPE, "description": "bench"}));
    let tasks: Vec<_> = (0..setup.clients)
        .map(|task| {
            let (client, next, body) = (setup.client_for(task).clone(), next.clone(), body.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < total {
                    client.submit(THROUGHPUT_PROJECT, &body).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// The number of operations of `project` that match `filter`, walking the list.
async fn count(client: &Client, project: &str, filter: &str) -> anyhow::Result<usize> {
    let mut token = String::new();
    let mut listed = 0;
    loop {
        let page = client
            .list(project, filter, PAGE_SIZE, &token)
            .await
            .context("cannot list the drained operations")?;
        listed += page["operations"].as_array().map_or(0, Vec::len);
        match page["nextPageToken"].as_str() {
            Some(next) if !next.is_empty() => token = next.to_string(),
            _ => return Ok(listed),
        }
    }
}
